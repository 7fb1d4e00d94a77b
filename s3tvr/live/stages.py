"""The thin stage adapters: each runs one model (:mod:`s3tvr.backends.kinds`, the denoiser) as a
pipeline :class:`~s3tvr.live.pipeline.Stage`.

A model takes audio or text and gives text or audio; its adapter takes the message, passes the
model what the utterance carries (its source language, voice, speech, speaking rate), stamps
what comes back on the utterance (``src_text``/``tgt_text``, ``skipped``, ``out_dur_s``) and sends
the next message on. The engine loads and frees the models; an adapter has nothing to load.
"""

from __future__ import annotations

from typing import Any, Iterator

from s3tvr.backends.kinds import AsrBackend, MtBackend, TtsBackend
from s3tvr.denoise import Denoiser
from s3tvr.live.messages import AudioChunk, SpeechSegment, Transcript, Translation
from s3tvr.live.pipeline import Stage


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
        text = self.model.transcribe(item.audio, utt.src_lang, utt_id=utt.utt_id)
        if not text:
            utt.skipped = "no words recognised"
            return
        language = self.model.output_language
        if language == utt.src_lang:
            utt.src_text = text
        else:  # already the target language (Whisper's translate task)
            utt.tgt_text = text
        yield Transcript(utt, text, language)


class MtStage(ModelStage):
    """``Transcript`` in, one ``Translation`` out; none, and the utterance skipped, when it came out empty."""

    model: MtBackend

    def process(self, item: Transcript) -> Iterator[Translation]:
        text = self.model.translate_text(item.text, utt_id=item.utt.utt_id)
        if not text:
            item.utt.skipped = "the translation came out empty"
            return
        item.utt.tgt_text = text
        yield Translation(item.utt, text)


class TtsStage(ModelStage):
    """``Translation`` (or a ``Transcript`` already in the target language) in, ``AudioChunk``s out
    as the model makes them, in the utterance's voice and at its speaking rate."""

    model: TtsBackend

    def process(self, item: Any) -> Iterator[AudioChunk]:
        utt, rate = item.utt, self.model.sample_rate
        for samples in self.model.speak(item.text, voice=utt.voice, speech=utt.speech, rate=utt.rate, utt_id=utt.utt_id):
            utt.out_dur_s += len(samples) / rate
            yield AudioChunk(utt, samples, rate)


def stage_for(model: Any) -> ModelStage:
    """The adapter that runs ``model`` in a pipeline."""
    for kind, stage in ((Denoiser, DenoiseStage), (AsrBackend, AsrStage), (MtBackend, MtStage), (TtsBackend, TtsStage)):
        if isinstance(model, kind):
            return stage(model)
    raise TypeError(f"no stage runs a {type(model).__name__}")
