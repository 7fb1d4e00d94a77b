"""Talk mode: two people, one device (``s3tvr talk A B``).

Each utterance's language is detected on its audio (the ASR's language ID, restricted to the two),
then it is transcribed in that language, translated into the other and spoken with the other
language's voice. It is one session as ``run`` has: one segmenter, sink, reorderer and latency log;
only three stages differ. The ASR stage detects before it transcribes and sets the utterance's
direction (``src_lang``/``tgt_lang``, which the log and ``s3tvr report`` show per utterance); the MT
and TTS stages each route an utterance to the model of its target language.

Sentence mode only: the language is told from the whole utterance, which simultaneous mode does
not wait for.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from s3tvr.backends.kinds import AsrBackend, Model, MtBackend, TtsBackend
from s3tvr.config import Config
from s3tvr.errors import InputError
from s3tvr.live.engine import Engine, build_backends
from s3tvr.live.messages import SpeechSegment, Transcript
from s3tvr.live.pacing import PacedTts
from s3tvr.live.pipeline import Pipeline, Stage
from s3tvr.live.session import Session
from s3tvr.live.stages import AsrStage, MtStage
from s3tvr.text.glossary import Glossary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Direction:
    """What translates into one of the two languages: the MT into it and the TTS that speaks it."""

    mt: MtBackend
    tts: TtsBackend


def sentence_only(config: Config) -> Config:
    """``config`` in sentence mode."""
    return dataclasses.replace(config, simultaneous=dataclasses.replace(config.simultaneous, mode="sentence"))


def check_languages(a: str, b: str) -> None:
    if a == b:
        raise InputError(f"talk needs two different languages, not {a} twice: e.g. s3tvr talk en es")


class TalkEngine(Engine):
    """The models of a conversation between ``forward``'s two languages, A and B: ``forward`` (A→B)
    loads as an :class:`Engine`'s (the VAD, the one ASR that hears both, the MT into B, B's voice);
    ``backward`` (B→A) adds the MT into A, loaded once with the first where it can share its weights
    (the LLM translator, the same settings), and A's voice. Both configs are checked when it is built,
    before anything loads."""

    def __init__(self, forward: Config, backward: Config):
        check_languages(forward.src_lang, forward.tgt_lang)
        if (backward.src_lang, backward.tgt_lang) != (forward.tgt_lang, forward.src_lang):
            raise ValueError("backward must translate forward's pair the other way")
        super().__init__(sentence_only(forward))
        self.languages = a, b = forward.src_lang, forward.tgt_lang
        _check_asr(self.asr, forward, backward)
        _, mt, tts = build_backends(backward)  # checked as run checks a pair; its ASR is not used
        if mt.share_weights(self.mt):
            log.info("one %s translator for both directions", mt.backend)
        self.into = {b: Direction(self.mt, self.tts), a: Direction(mt, tts)}
        # Loaded and freed with the engine's own models, under these names (loads: their seconds and memory).
        self.backward: dict[str, Model] = {f"mt into {a}": mt, f"tts into {a}": tts}
        if forward.simultaneous.mode != "sentence":  # said once the configs passed their checks
            log.info("talk mode translates whole utterances (sentence mode, not simultaneous.mode=%s): the language of "
                     "each is told from all of it", forward.simultaneous.mode)

    @property
    def description(self) -> str:
        a, b = self.languages
        return (f"{a}<->{b}: asr:{self.asr.backend} (language ID), mt:{self.into[b].mt.backend}/{self.into[a].mt.backend}, "
                f"tts:{self.into[b].tts.backend} ({b})/{self.into[a].tts.backend} ({a})")

    def _session_parts(self) -> list[str]:
        return [*super()._session_parts(), *self.backward]

    def _part(self, name: str) -> Any:
        return self.backward[name] if name in self.backward else super()._part(name)

    def check_languages(self, src: str, tgt: str) -> None:
        """A conversation between this engine's two languages, named either way round."""
        if {src, tgt} != set(self.languages):
            a, b = self.languages
            raise InputError(f"these models hold conversations between {a} and {b}, not {src}->{tgt}: ask for "
                             f"from={a}&to={b}, or load models for your pair")

    def session(self, **kwargs: Any) -> TalkSession:
        """A conversation over these models: :class:`TalkSession` (Session's arguments, its pair the engine's)."""
        return TalkSession(self, **kwargs)

    def cleanup(self) -> None:
        with self._load_lock:
            loaded = [model for name, model in self.backward.items() if name in self._loaded]
        for model in loaded:
            try:
                model.cleanup()
            except Exception:  # cleanup must not hide the run's outcome
                log.debug("cleanup failed", exc_info=True)
        super().cleanup()


def _check_asr(asr: AsrBackend, forward: Config, backward: Config) -> None:
    """One ASR hears both people: it must tell their languages apart and write each in its own."""
    a, b = forward.src_lang, forward.tgt_lang
    if not asr.detects_language:
        raise InputError(f"talk needs an ASR that tells languages apart (faster-whisper), not {asr.backend}: "
                         "--set asr.backend=faster-whisper")
    if asr.text_language(b) != b:
        raise InputError(f"talk needs each utterance's text in the language spoken, but ASR {asr.backend} writes "
                         f"{asr.text_language(b)}: --set asr.task=transcribe")
    if backward.asr != forward.asr:
        log.warning("the %s->%s config asks for another ASR; the %s->%s one hears both languages", b, a, a, b)


class TalkSession(Session):
    """A conversation on one device: a :class:`~s3tvr.live.session.Session` whose ASR stage detects
    each utterance's language and whose MT and TTS stages route it by its target language. Each
    person has a voice of their own for a voice-cloning TTS (learned from their own utterances)."""

    engine: TalkEngine

    def _build_pipeline(self) -> Pipeline:
        engine, audio = self.engine, self.config.audio
        a, b = engine.languages
        # What A says is spoken by the TTS into B, so A's voice is one of that TTS's (run's, made by
        # setup()), and B's one of the TTS into A: a cloning TTS learns each person from their own turns.
        voices = {a: self.voice, b: engine.into[a].tts.new_voice((), "", self.voice_owner, self.share_voices)}

        def paced(tts: TtsBackend) -> PacedTts:  # lag control, as run's
            return PacedTts(tts, self.sink.backlog_s, audio.lag_s, audio.max_rate, audio.max_gap_s)

        stages: list[Stage] = [s for s in engine.stages if s.name == "denoise"]
        # The glossary is A's words into B's (talk --glossary): B's turns go without it.
        stages += [DetectingAsrStage(engine.asr, engine.languages, voices, {a: self.glossary}),
                   ByTarget({lang: MtStage(d.mt) for lang, d in engine.into.items()}),
                   ByTarget({lang: paced(d.tts) for lang, d in engine.into.items()})]
        return Pipeline(stages, self.config.pipeline.queue_size, self.config.pipeline.workers, engine.locks)


class DetectingAsrStage(AsrStage):
    """``SpeechSegment`` in, its ``Transcript`` out, once its language is told: the likelier of the
    two, which sets the utterance's direction (into the other) and its speaker's voice."""

    def __init__(self, model: AsrBackend, languages: tuple[str, str], voices: dict[str, Any],
                 glossaries: Optional[dict[str, Glossary]] = None):
        super().__init__(model)
        self.languages, self.voices, self.glossaries = languages, voices, glossaries or {}

    def process(self, item: SpeechSegment) -> Iterator[Transcript]:
        utt = item.utt
        spoken, share = self.model.language_of(item.audio, self.languages, utt_id=utt.utt_id)
        if spoken not in self.languages:
            raise RuntimeError(f"language ID gave {spoken}, neither of {'/'.join(self.languages)}")
        utt.src_lang = spoken
        utt.tgt_lang = next(lang for lang in self.languages if lang != spoken)
        utt.voice = self.voices[spoken]
        utt.glossary = self.glossaries.get(spoken) or None
        log.info("utterance %d: %s→%s (language ID: %.0f %% %s)", utt.utt_id, utt.src_lang, utt.tgt_lang, 100 * share, spoken)
        yield from super().process(item)


class ByTarget(Stage):
    """One stage of a kind (mt or tts) over each direction's: an utterance goes to the one for its
    target language. It keeps their name, so the engine's lock for the kind covers both (one LLM
    serves both directions of a conversation), and stamps the backend that ran on the utterance."""

    def __init__(self, by_target: dict[str, Stage]):
        stages = list(by_target.values())
        self.by_target = by_target
        self.name = stages[0].name
        self.backend = "/".join(dict.fromkeys(s.backend for s in stages))
        self.thread_safe = all(s.thread_safe for s in stages)

    def process(self, item: Any) -> Iterator[Any]:
        utt = item.utt
        stage = self.by_target[utt.tgt_lang]
        timing = utt.stages.get(self.name)
        if timing is not None:  # the pipeline stamped this stage's; the log names the model that ran
            timing.backend = stage.backend
        yield from stage.process(item)
