"""What an ASR, an MT and a TTS backend are: the stage they run as, and what they can do beyond it.

Every backend subclasses one of these. The optional abilities are explicit members with
defaults, so callers ask ``asr.word_times`` or ``tts.clones_voice`` instead of probing with
``hasattr``, and anything that varies per session or per utterance (a voice, a speaking rate)
travels with the session or the message, never written into a loaded backend's config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from s3tvr.errors import InputError
from s3tvr.live.messages import Word
from s3tvr.live.pipeline import Stage


class AsrBackend(Stage):
    """Speech (16 kHz) in, text out: ``process(SpeechSegment)`` yields one ``Transcript``."""

    name = "asr"
    languages: Optional[frozenset[str]] = None  # source languages it hears; None: any it was given
    word_times = False  # words() gives each word's time (and probability): dubbing and fine-tuning need them
    # Hears each utterance in its own source language (UttInfo.src_lang), so one loaded model serves
    # sessions in several languages (s3tvr serve); otherwise it hears only the language it was built for.
    any_source = False

    def __init__(self, src_lang: str, tgt_lang: str):
        self.src_lang, self.tgt_lang = src_lang, tgt_lang

    @property
    def output_language(self) -> str:
        """The language of its text: the source, or English for Whisper's translate task."""
        return self.src_lang

    def words(self, audio: np.ndarray) -> list[Word]:
        """The source-language words of ``audio`` (16 kHz) with their times, whatever the task."""
        raise NotImplementedError(f"ASR backend {self.backend} gives no word times")

    def hypothesis(self, audio: np.ndarray, prompt: str = "", language: str = "") -> list[Word]:
        """The words of ``audio`` (16 kHz) in :attr:`output_language`, with their times: one pass of
        simultaneous recognition over the speech heard so far. ``prompt``: the text already
        committed before this audio, for a model that can be conditioned on it; ``language``: the
        session's source language (an ``any_source`` backend's; others hear their own)."""
        if self.output_language != self.src_lang:
            raise NotImplementedError(f"ASR backend {self.backend} cannot recognise incrementally in its task")
        return self.words(audio)


class MtBackend(Stage):
    """Text in one language to another: ``process(Transcript)`` yields one ``Translation``."""

    name = "mt"

    def __init__(self, src_lang: str, tgt_lang: str):
        self.src_lang, self.tgt_lang = src_lang, tgt_lang

    def translate(self, sentences: list[str]) -> list[str]:
        """Each sentence translated, in order."""
        raise NotImplementedError


class TtsBackend(Stage):
    """Text to speech: ``process(Translation)`` yields ``AudioChunk``s as they are made.

    The speaking rate (``UttInfo.rate``) and the voice (``UttInfo.voice``, which a session fills
    from :meth:`new_voice`) come with each utterance, never from the backend's config."""

    name = "tts"
    speaking_rate = False  # honours UttInfo.rate (dubbing retakes a phrase faster when it must fit)
    clones_voice = False  # speaks in a voice given per session (new_voice)
    own_voice: Sequence[Path] = ()  # recordings of the voice it clones by default (a fine-tuned model's speaker)

    def __init__(self, src_lang: str, tgt_lang: str):
        self.src_lang, self.tgt_lang = src_lang, tgt_lang

    @property
    def languages(self) -> frozenset[str]:
        """The languages it speaks."""
        return frozenset({self.tgt_lang})

    def check_voice(self, clips: Sequence[str | Path] = (), speaker: str = "") -> list[Path]:
        """The voice asked for, checked before any model loads: the clips as paths, each of
        which must exist, and only for a backend that clones voices."""
        if (clips or speaker) and not self.clones_voice:
            raise InputError(f"--voice and --speaker need a voice-cloning TTS, but this config uses {self.backend}: "
                             f"add --config stack or --set tts.backend=xtts")
        return voice_clips(clips)

    def new_voice(self, clips: Sequence[Path] = (), speaker: str = "") -> Any:
        """One session's voice, after setup(): from recordings of the speaker (``clips``), kept on
        disk under a ``speaker`` name, or learned from the session's own speech. None when the
        backend speaks in a fixed voice."""
        self.check_voice(clips, speaker)
        return None


def voice_clips(paths: Sequence[str | Path]) -> list[Path]:
    """Recordings of a speaker as paths, each checked to exist."""
    clips = [Path(p).expanduser() for p in paths]
    for clip in clips:
        if not clip.is_file():
            raise InputError(f"voice clip {clip} not found: give one or more recordings of the speaker (--voice FILE)")
    return clips
