"""ASR with faster-whisper (Whisper on CTranslate2).

Whisper's translate task turns speech in any of its languages into English text, a complete
speech→English path with no MT stage (``task: translate`` with ``mt: none``).

Every pass reads an encoder window the length of its audio plus a margin, not Whisper's 30 s:
faster-whisper pads each segment to 3,000 mel frames, so a pass over 2 s of speech costs what one
over 28 s does, while Whisper's encoder (CTranslate2's) reads any shorter window. The margin keeps
the decoder from running past the speech into a repetition loop, which a window cut at the speech's
end invites; ``asr.full_window=true`` restores the 30 s window.

Whisper loads one way, :func:`load_model`: for this backend, for language detection
(:mod:`s3tvr.backends.language_id`) and, as this backend, for eval's judge.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import re
from dataclasses import dataclass
from typing import Annotated, Any, Optional, Sequence

import numpy as np

from s3tvr.audio import SAMPLE_RATE
from s3tvr.backends.asr import pass_cost_s  # the very measurement mode auto makes
from s3tvr.backends.kinds import AsrBackend, Word
from s3tvr.bounds import Range
from s3tvr.config import SimultaneousConfig
from s3tvr.errors import InputError, SetupError
from s3tvr.weights import bundled, downloaded

log = logging.getLogger(__name__)

# Whisper decodes at most 448 tokens, prompt included, and faster-whisper keeps up to 223 of the
# prompt: the new tokens of a prompted pass must stay under the rest.
MAX_TOKENS = 200
FRAMES_PER_S = 100  # Whisper's mel frames (10 ms hop)
FULL_WINDOW_S = 30  # what faster-whisper pads every segment to
# Chosen by benchmarks/bench_window.py: with 1 s (or 0.5, or 1.5) of padding after tightly cut speech the
# decoder sometimes repeats the sentence ("in being comparatively modern, in being comparatively …",
# LJSpeech WER 12.4 % against 7.5 % with the full window); with 2 s it does not (7.3 %).
WINDOW_MARGIN_S = 2.0
REPEAT_WORDS = 4  # a pass whose text says this many words twice is made again over the full window
# faster-whisper's names of the Whispers ``s3tvr download`` fetches (its keys), largest last.
DOWNLOADS = {"small": "whisper-small", "large-v3-turbo": "whisper-large-v3-turbo"}
# Simultaneous mode's pace at its defaults: passes over 10 s of speech every max_step_s, taking
# pass_budget of the time (simultaneous.auto_mode, for one session).
PACE_S = SimultaneousConfig.pass_budget * SimultaneousConfig.max_step_s


@dataclass
class Config:
    # a faster-whisper name (base, small, large-v3-turbo …; small and large-v3-turbo are the downloaded copies where
    # s3tvr download fetched them), a local folder, bundled:base|tiny.en, or auto: the largest installed of
    # large-v3-turbo, small (s3tvr download whisper-…) and bundled:base whose pass keeps pace here (auto_max_pass_s)
    model: str = "bundled:base"
    # asr.model=auto takes a larger Whisper where its pass over 10 s of speech takes at most this here; the
    # default is simultaneous mode's pace (pass_budget x max_step_s: simultaneous.auto_mode)
    auto_max_pass_s: Annotated[float, Range(0, 60)] = PACE_S
    task: str = "transcribe"  # transcribe | translate (to English)
    # task translate: also transcribe each utterance in the language spoken (a second pass, its cost in
    # docs/measurements.md "Captions"), so captions show the speaker's words; run --captions turns it on
    transcript: bool = False
    compute_type: str = "default"  # default: the run's dtype, or int8 on CPU / float16 on CUDA when that is auto
    beam_size: Annotated[int, Range(1, 20)] = 1  # greedy decoding: beam 5 costs ~2x the time for little gain on short utterances
    cpu_threads: Annotated[int, Range(0, 512)] = 0  # 0: all cores
    local_files_only: bool = False  # True: never download a named model
    window_margin_s: Annotated[float, Range(0.5, 30)] = WINDOW_MARGIN_S  # encoder window = the audio + this (whole seconds)
    full_window: bool = False  # True: Whisper's 30 s window for every pass, whatever the audio's length
    # transcribe() decodes Whisper's timestamp tokens too: slower, for whole recordings rather than
    # utterances (eval's judge, whose figures were measured so); sentence passes leave them out
    timestamps: bool = False


class Backend(AsrBackend):
    backend = "faster-whisper"
    thread_safe = True  # CTranslate2 models serve concurrent calls
    word_times = True
    any_source = True  # the language is a decoding hint per call
    detects_language = True  # a multilingual Whisper's language ID (an English-only one refuses)

    def __init__(self, config: Config, src_lang: str, tgt_lang: str, device: str = "cpu", dtype: str = "auto"):
        if config.task not in ("transcribe", "translate"):
            raise InputError(f"asr.task must be transcribe or translate, not {config.task!r}")
        super().__init__(src_lang, tgt_lang)
        self.config = config
        self.device = device
        self.dtype = dtype
        self.model = None
        self.model_name = config.model  # auto: the one chosen by setup()
        self.transcript = config.transcript and config.task == "translate"  # transcribing, the text is the transcript

    @property
    def output_language(self) -> str:
        return "en" if self.config.task == "translate" else self.src_lang

    @property
    def languages(self) -> frozenset[str]:  # type: ignore[override]
        from faster_whisper.tokenizer import _LANGUAGE_CODES  # Whisper's languages: the library has no public list

        return frozenset(_LANGUAGE_CODES)

    def text_language(self, spoken: str) -> str:
        return "en" if self.config.task == "translate" else spoken

    def language_of(self, audio: np.ndarray, languages: Sequence[str], *, utt_id: int = 0) -> tuple[str, float]:
        """Whisper's language ID over the utterance, restricted to ``languages``: the likeliest of
        them, and its share of their probabilities (Whisper's own top language may be a third one,
        Portuguese for accented Spanish: between the two people's languages, the likelier wins)."""
        if not self.model.model.is_multilingual:
            raise InputError(f"Whisper model {self.model_name} is English-only: it cannot tell languages apart; "
                             "choose a multilingual one (e.g. asr.model=bundled:base)")
        probabilities = language_probabilities(self.model, audio)
        scores = {lang: probabilities.get(lang, 0.0) for lang in languages}
        best = max(scores, key=scores.__getitem__)
        total = sum(scores.values())
        return best, scores[best] / total if total else 1 / len(scores)

    def setup(self) -> None:
        if self.config.model == "auto":
            self._choose()
        else:
            self.model = self._load(self.config.model)
        if not self.model.model.is_multilingual and self.src_lang != "en":
            raise SetupError(f"Whisper model {self.model_name} is English-only; for {self.src_lang} choose a multilingual one "
                             "(e.g. bundled:base)")

    def _load(self, model: str) -> Any:
        compute = self.config.compute_type
        if compute == "default":
            compute = self.dtype if self.dtype != "auto" else ("float16" if self.device == "cuda" else "int8")
        return load_model(model, self.device, compute, self.config.cpu_threads, self.config.local_files_only)

    def _choose(self) -> None:
        """asr.model=auto: the largest installed Whisper whose pass over 10 s (the calibration clip,
        as mode auto times it) takes at most ``auto_max_pass_s`` here, else the smallest; said in
        the log. Largest first, stopping at the first that keeps pace; the smallest is not timed
        (it is used whatever its pace), so with only bundled base installed this costs nothing."""
        (smallest, spec), *larger = installed_whispers()
        slow: list[str] = []
        for name, path in reversed(larger):
            self.model, self.model_name = self._load(path), name
            self.calibrated_pass_s = cost = pass_cost_s(self)
            if cost is not None and cost <= self.config.auto_max_pass_s:
                log.info("asr.model=auto: Whisper %s (%s)", name, "; ".join([self._pace(cost, "within"), *slow]))
                return
            slow.append(f"{name}: " + ("its pass failed" if cost is None else self._pace(cost, "more than")))
            self.model = self.calibrated_pass_s = None  # freed before the next loads
        self.model, self.model_name = self._load(spec), smallest
        log.info("asr.model=auto: Whisper %s (%s)", smallest, "; ".join(slow) or
                 "the only one installed: s3tvr download whisper-small or whisper-large-v3-turbo fetches a larger one")

    def _pace(self, cost_s: float, verdict: str) -> str:
        return f"a pass over 10 s of speech takes {cost_s:.2f} s here, {verdict} asr.auto_max_pass_s ({self.config.auto_max_pass_s:g} s)"

    def transcribe(self, audio: np.ndarray, language: str, *, utt_id: int = 0, hotwords: Sequence[str] = ()) -> str:
        """The utterance's text in the task's language (English when translating), heard as ``language``."""
        segments = self._pass(
            audio,
            hotwords=_hotwords(hotwords),
            language=self._language(language),
            task=self.config.task,
            beam_size=self.config.beam_size,
            condition_on_previous_text=False,  # each utterance stands alone; avoids repetition loops
            without_timestamps=not self.config.timestamps,
            vad_filter=False,  # the segmenter already found the speech
        )
        return " ".join(s.text.strip() for s in segments).strip()

    def source_text(self, audio: np.ndarray, language: str, *, utt_id: int = 0) -> str:
        """The utterance's text in the language spoken (``language``), whatever the task: with the
        translate task, a second pass (transcribe), as :meth:`transcribe` makes it otherwise."""
        segments = self._pass(
            audio, language=self._language(language), task="transcribe", beam_size=self.config.beam_size,
            condition_on_previous_text=False, without_timestamps=not self.config.timestamps, vad_filter=False)
        return " ".join(s.text.strip() for s in segments).strip()

    def words(self, audio: np.ndarray, hotwords: Sequence[str] = ()) -> list[Word]:
        """The source-language words of ``audio`` (16 kHz) with their times, whatever the task
        (dubbing times phrases by them and subtitles the source with them)."""
        segments = self._pass(
            audio, language=self._language(self.src_lang), task="transcribe", hotwords=_hotwords(hotwords),
            beam_size=self.config.beam_size, condition_on_previous_text=False, word_timestamps=True, vad_filter=False)
        return [Word(w.word.strip(), w.start, w.end, w.probability) for s in segments for w in (s.words or []) if w.word.strip()]

    def hypothesis(self, audio: np.ndarray, prompt: str = "", language: str = "", hotwords: Sequence[str] = ()) -> list[Word]:
        """One pass of simultaneous recognition, in the task's language (English when translating),
        conditioned on what was already committed."""
        segments = self._pass(
            audio, language=self._language(language or self.src_lang), task=self.config.task,
            beam_size=self.config.beam_size, condition_on_previous_text=False,
            # the hotwords lead the committed text, in the prompt's 223 tokens (both as hotwords would overrun MAX_TOKENS)
            initial_prompt=" ".join(filter(None, (_hotwords(hotwords), prompt))) or None,
            word_timestamps=True, vad_filter=False, without_timestamps=True, one_window=True,
            temperature=0.0)  # no fallback re-decoding: on a short prefix it costs seconds and makes words up
        return [Word(w.word.strip(), w.start, w.end, w.probability) for s in segments for w in (s.words or []) if w.word.strip()]

    def _pass(self, audio: np.ndarray, one_window: bool = False, **options: Any) -> list[Any]:
        margin = None if self.config.full_window else self.config.window_margin_s
        return whisper_pass(self.model, audio, margin, one_window=one_window, **options)

    def _language(self, lang: str) -> str | None:
        return lang if self.model.model.is_multilingual else None  # an English-only model takes no language

    def cleanup(self) -> None:
        self.model = None


def _hotwords(words: Sequence[str]) -> Optional[str]:
    """faster-whisper's ``hotwords``: a phrase before the prompt (its "previous text") that biases
    Whisper towards those spellings; faster-whisper cuts it to half the decoder's tokens."""
    return ", ".join(words) or None


def whisper_pass(model: Any, audio: np.ndarray, margin_s: Optional[float] = WINDOW_MARGIN_S, one_window: bool = False,
                 **options: Any) -> list[Any]:
    """faster-whisper's segments of one pass over ``audio`` (``options``: its ``transcribe``'s),
    the encoder reading ``audio`` plus ``margin_s`` (None: the full window), capped against
    repetition loops. A window ending close to the speech can still make the decoder say part of
    it again ("The cabbage juice changes color … the chemical is. The cabbage juice changes color
    …", tiny.en on a FLEURS clip): then the pass is made again over the full window, which does not.

    ``one_window`` (with ``without_timestamps``: one segment a window): only the first window's
    segment. With word times, faster-whisper goes on from the last word's end and decodes what
    follows it in a window of its own; for audio shorter than a window the first heard all of it,
    and the second (a half-heard last word, or the margin's silence) cost 2.6x a pass's time
    (benchmarks/bench_whisper_sizes.py) for words the first had already placed or made up."""
    def one_pass(windowed: Any) -> list[Any]:
        segments = windowed.transcribe(audio, max_new_tokens=token_cap(audio), **options)[0]
        if one_window:
            first = next(segments, None)
            return [first] if first is not None else []
        return list(segments)

    if margin_s is None:
        return one_pass(model)
    segments = one_pass(with_window(model, audio, margin_s))
    if says_twice(" ".join(s.text for s in segments)):
        log.debug("the cut window repeated itself: the full window again")
        segments = one_pass(model)
    return segments


def says_twice(text: str, n: int = REPEAT_WORDS) -> bool:
    """Whether some run of ``n`` words comes twice in ``text``: a decoder that went round again.
    Speech seldom repeats four words within one utterance, and when it does, a second pass costs
    only time."""
    words = re.findall(r"\w+", text.lower())
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) < len(grams)


def token_cap(audio: np.ndarray) -> int:
    """The most tokens a pass over ``audio`` may write. A prefix cut mid-word, or a window that ends
    close to the speech, can send the decoder into a repetition loop ("of the output of the output
    …") that runs to Whisper's token limit: seconds lost, the next passes delayed. Speech is well
    under 8 tokens a second."""
    return min(MAX_TOKENS, 10 + int(8 * len(audio) / SAMPLE_RATE))


def windowed_model_class() -> type:
    """faster-whisper's WhisperModel, whose encoder reads ``window_frames`` of each padded segment."""
    import faster_whisper

    class WindowedWhisperModel(faster_whisper.WhisperModel):
        window_frames = FULL_WINDOW_S * FRAMES_PER_S

        def encode(self, features: np.ndarray):
            # Every segment arrives padded to 3,000 frames; the frames past the window are that padding
            # (a segment is never longer than its audio, and the window is the audio plus the margin).
            return super().encode(features[..., : self.window_frames])

    return WindowedWhisperModel


def load_model(model: str = "bundled:base", device: str = "cpu", compute_type: str = "int8", cpu_threads: int = 0,
               local_files_only: bool = False) -> Any:
    """Whisper with its encoder window cut to each pass's audio (:func:`with_window`): ``model`` is
    a faster-whisper name, a local folder or ``bundled:base|tiny.en``. A load failure is one
    SetupError line; without faster-whisper installed, ImportError."""
    path = str(downloaded.installed(DOWNLOADS[model]) or model) if model in DOWNLOADS else bundled.resolve(model)
    if os.sep in path and not os.path.isdir(path):
        raise SetupError(f"Whisper model folder {path} not found: give a model name (e.g. base) or a folder with model.bin")
    whisper = windowed_model_class()
    try:
        return whisper(path, device=device, compute_type=compute_type, cpu_threads=cpu_threads,
                       local_files_only=local_files_only)
    except Exception as exc:  # a download or load failure, reported as one line
        raise SetupError(f"could not load Whisper model {model!r}: {exc}. Give a local folder with "
                         "asr.model=PATH, or connect to the internet once to download it") from None


def installed_whispers() -> list[tuple[str, str]]:
    """(name, model) of each Whisper asr.model=auto may take, smallest first: bundled base where its
    packages are installed, then those ``s3tvr download`` fetched. None at all: a SetupError saying how to get one."""
    whispers, missing = [], ""
    try:
        whispers.append(("base", bundled.resolve("bundled:base")))
    except SetupError as exc:
        missing = str(exc)
    whispers += [(name, str(folder)) for name, key in DOWNLOADS.items() if (folder := downloaded.installed(key))]
    if not whispers:
        raise SetupError(f"asr.model=auto found no Whisper model ({missing}); or fetch one with s3tvr download whisper-small")
    return whispers


def with_window(model: Any, audio: np.ndarray, margin_s: float = WINDOW_MARGIN_S) -> Any:
    """``model`` reading an encoder window as long as ``audio`` plus ``margin_s``, rounded up to whole
    seconds (30 at most). A shallow copy: the loaded weights are shared, the window is the copy's alone."""
    windowed = copy.copy(model)
    windowed.window_frames = min(FULL_WINDOW_S, math.ceil(len(audio) / SAMPLE_RATE + margin_s)) * FRAMES_PER_S
    return windowed


def spoken_language(model: Any, audio16k: np.ndarray) -> tuple[str, float]:
    """The language spoken in the first 30 s of ``audio16k`` by a :func:`load_model` Whisper, and its probability."""
    probabilities = language_probabilities(model, audio16k)
    language = max(probabilities, key=probabilities.__getitem__)
    return language, probabilities[language]


def language_probabilities(model: Any, audio16k: np.ndarray) -> dict[str, float]:
    """Each language's probability (Whisper's codes: "es") of being the one spoken in the first 30 s
    of ``audio16k``, by a :func:`load_model` Whisper: one encoder pass over a window the audio's
    length and one decoder step."""
    audio = audio16k[: FULL_WINDOW_S * SAMPLE_RATE]
    _, _, every = with_window(model, audio).detect_language(audio)
    return dict(every)
