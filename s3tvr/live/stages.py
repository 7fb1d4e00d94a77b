"""The thin stage adapters: each runs one model (:mod:`s3tvr.backends.kinds`, the denoiser) as a
pipeline :class:`~s3tvr.live.pipeline.Stage`.

A model takes audio or text and gives text or audio; its adapter takes the message, passes the
model what the utterance carries (its source language, voice, speech, speaking rate), stamps
what comes back on the utterance (``src_text``/``tgt_text``, ``skipped``, ``out_dur_s``) and sends
the next message on. The engine loads and frees the models; an adapter has nothing to load.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Iterator, Optional

from s3tvr.audio.denoise import Denoiser
from s3tvr.backends.kinds import AsrBackend, MtBackend, MtContext, TtsBackend
from s3tvr.languages import join_sentences
from s3tvr.live.messages import AudioChunk, SpeechSegment, Transcript, Translation
from s3tvr.live.pipeline import Stage
from s3tvr.text.glossary import NO_GLOSSARY

log = logging.getLogger(__name__)


class ModelStage(Stage):
    """A stage over ``model``: its name, backend and thread safety are the model's (so the engine's
    lock for a model is found by the stage's name)."""

    def __init__(self, model: Any):
        self.model = model
        self.name, self.backend, self.thread_safe = model.name, model.backend, model.thread_safe


class DenoiseStage(ModelStage):
    """``SpeechSegment`` in, the same segment denoised out."""

    model: Denoiser

    def process(self, item: SpeechSegment) -> Iterator[SpeechSegment]:
        yield SpeechSegment(item.utt, self.model.clean(item.audio, item.noise), item.noise)


class AsrStage(ModelStage):
    """``SpeechSegment`` in, one ``Transcript`` out; none, and the utterance skipped, when no words were heard."""

    model: AsrBackend

    def process(self, item: SpeechSegment) -> Iterator[Transcript]:
        utt = item.utt
        glossary = utt.glossary or NO_GLOSSARY
        text = self.model.transcribe(item.audio, utt.src_lang, utt_id=utt.utt_id, hotwords=glossary.hotwords())
        if not text:
            utt.skipped = "no words recognised"
            return
        language = self.model.text_language(utt.src_lang)
        if language == utt.src_lang:
            utt.src_text = text
            yield Transcript(utt, text, language)
            return
        utt.tgt_text = text  # already the target language (Whisper's translate task)
        if not self.model.transcript:
            yield Transcript(utt, text, language)
            return
        utt.transcribed = threading.Event()
        try:
            yield Transcript(utt, text, language)  # the translation goes on to be spoken meanwhile
            utt.src_text = self.model.source_text(item.audio, utt.src_lang, utt_id=utt.utt_id)
        except Exception as exc:  # the translation is spoken already: only its source line is lost, never the utterance
            log.warning("utterance %d: the transcript pass failed: %s", utt.utt_id, exc)
        finally:
            utt.transcribed.set()


class MtStage(ModelStage):
    """``Transcript`` in, its ``Translation`` out: whole, or clause by clause from a translator that
    streams (pieces with ``more``, then an empty last piece); none, and the utterance skipped, when
    it came out empty.

    One per session: it keeps the session's last sentences and their translations (the model's
    ``context_sentences``) for a translator that translates in context, and in simultaneous mode
    the clauses already translated of the sentence being spoken, so a clause is never translated
    as if alone. The translator's first piece is due ``late_s`` (the model's) after the utterance
    reached the stage, waiting for the model included. The translation keeps to the utterance's
    glossary (MtBackend.translate_with), and the terms it renders are counted on the utterance."""

    model: MtBackend

    def __init__(self, model: MtBackend):
        super().__init__(model)
        self.keep, self.late_s = model.context_sentences, model.late_s
        self.context = MtContext()
        # the sentence being spoken in clauses: (its source id, its clauses so far, their translation)
        self._source: Optional[tuple[Any, str, str]] = None

    def process(self, item: Transcript) -> Iterator[Translation]:
        utt = item.utt
        context = self._context_for(utt)
        arrived = utt.stages["mt"].start if "mt" in utt.stages else time.monotonic()  # the pipeline stamps it before the lock
        deadline = None if self.late_s is None else arrived + self.late_s
        stream = self.model.streams
        pieces: list[str] = []
        pieces_of = self.model.translate_with(item.text, utt.glossary or NO_GLOSSARY, context, source=utt.src_lang,
                                              deadline=deadline, utt_id=utt.utt_id)
        for piece in pieces_of:
            utt.mt_note = "; ".join(dict.fromkeys(n for n in (utt.mt_note, piece.note) if n))
            utt.glossary_terms += piece.terms
            if not piece.text:
                continue
            pieces.append(piece.text)
            utt.tgt_text = join_sentences(pieces, utt.tgt_lang)
            if stream:
                yield Translation(utt, piece.text, len(pieces) - 1, more=True)
        self._remember(utt, item.text, utt.tgt_text if pieces else "")
        if not pieces:
            utt.skipped = "the translation came out empty"
            if not stream:
                return
        if stream:
            yield Translation(utt, "", len(pieces))  # the end of its pieces (none if nothing came out)
        else:
            yield Translation(utt, utt.tgt_text)

    def _context_for(self, utt: Any) -> MtContext:
        """The context of this utterance: earlier sentences, and the clauses before it in its sentence."""
        if utt.source_id is None or self._source is None or self._source[0] != utt.source_id:
            return self.context
        return MtContext(self.context.before, *self._source[1:])

    def _remember(self, utt: Any, source: str, translation: str) -> None:
        if utt.source_id is not None and not utt.last_clause:  # a clause: its sentence goes on
            before = self._source if self._source and self._source[0] == utt.source_id else (utt.source_id, "", "")
            self._source = (utt.source_id, _joined(before[1], source, utt.src_lang), _joined(before[2], translation, utt.tgt_lang))
            return
        if self._source is not None and self._source[0] == utt.source_id:  # the sentence's last clause
            source = _joined(self._source[1], source, utt.src_lang)
            translation = _joined(self._source[2], translation, utt.tgt_lang)
        self._source = None
        self.context = self.context.then(source, translation, self.keep)


def _joined(before: str, text: str, lang: str) -> str:
    return join_sentences([t for t in (before, text) if t], lang)


class TtsStage(ModelStage):
    """``Translation`` (or a ``Transcript`` already in the target language) in, ``AudioChunk``s out
    as the model makes them, in the utterance's voice and at its speaking rate."""

    model: TtsBackend

    def process(self, item: Any) -> Iterator[AudioChunk]:
        utt, rate = item.utt, self.model.sample_rate
        if not item.text:  # the empty last piece of a streamed translation
            return
        # The glossary's pronunciations are respelt for the TTS only: the captions keep the written words.
        text = utt.glossary.respell(item.text) if utt.glossary else item.text
        for samples in self.model.speak(text, voice=utt.voice, speech=utt.speech, rate=utt.rate, utt_id=utt.utt_id):
            utt.out_dur_s += len(samples) / rate
            yield AudioChunk(utt, samples, rate)


def stage_for(model: Any) -> ModelStage:
    """The adapter that runs ``model`` in a pipeline."""
    for kind, stage in ((Denoiser, DenoiseStage), (AsrBackend, AsrStage), (MtBackend, MtStage), (TtsBackend, TtsStage)):
        if isinstance(model, kind):
            return stage(model)
    raise TypeError(f"no stage runs a {type(model).__name__}")
