"""Typed messages that flow between stages.

Every message carries the :class:`UttInfo` of the utterance it belongs to. The info object is
shared by all messages of one utterance and each stage adds its timestamps to it, so the
collector at the end of the chain sees the whole story of the utterance in one place.
Times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


@dataclass
class StageTiming:
    start: float
    end: Optional[float] = None
    first_out: Optional[float] = None  # first output of a streaming stage (TTS's first chunk)
    backend: str = ""


@dataclass
class UttInfo:
    utt_id: int
    src_lang: str
    tgt_lang: str
    seg_start_s: float  # where the speech sits on the input timeline
    seg_end_s: float
    t_speech_end: float  # wall clock when the last speech sample entered the program
    t_vad_emit: float  # wall clock when the segmenter released the utterance (a clause: when ASR committed it)
    # Simultaneous mode speaks an utterance clause by clause; each clause travels as an utterance
    # of its own (its own utt_id, in spoken order) that names the source utterance it belongs to.
    source_id: Optional[int] = None  # the source utterance (None: this utterance is its own source)
    last_clause: bool = True  # the source utterance's last clause: its end is the end of the source speech
    t_speech_start: Optional[float] = None  # wall clock when the source utterance's first speech sample entered
    stages: dict[str, StageTiming] = field(default_factory=dict)
    src_text: str = ""
    tgt_text: str = ""
    t_first_audio: Optional[float] = None
    t_play_end: Optional[float] = None
    # Every chunk of translated speech as a listener hears it: (wall clock it starts playing,
    # its seconds), stamped by the sink; the field's latency metrics are computed from these.
    played: list[tuple[float, float]] = field(default_factory=list)
    out_dur_s: float = 0.0
    error: Optional[str] = None
    skipped: Optional[str] = None  # why nothing was spoken, when nothing went wrong (no words heard)
    # The utterance's own speech (16 kHz): a voice-cloning TTS learns the speaker's voice from it.
    speech: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    # The session's voice for a voice-cloning TTS (TtsBackend.new_voice); None: the backend's own.
    voice: Any = field(default=None, repr=False, compare=False)
    rate: float = 1.0  # speaking rate asked of a TTS that has that ability (dubbing fits phrases with it)
    # Simultaneous mode on a machine whose passes cost too much (simultaneous.PassPacer): "slowed" (passes
    # less often than the step), "stopped" (recognised once the utterance ended); "" otherwise.
    asr_pacing: str = ""
    # The session's glossary (s3tvr.text.glossary): biases the ASR, kept to by the MT, respelt for the TTS;
    # glossary_terms: how many of its terms the translation renders.
    glossary: Any = field(default=None, repr=False, compare=False)
    glossary_terms: int = 0
    # The translator's word when its own reply was not used whole: refused or late and translated by
    # its fallback instead, or stopped early ("" otherwise; MtPiece.note).
    mt_note: str = ""
    # The transcript pass (asr.transcript: the source text where the ASR's task gave the target's) runs
    # after the translation has gone on, off the path to first audio; set once src_text is final, and
    # awaited before the utterance is logged, so every record and caption has it (None: no pass).
    transcribed: Optional[threading.Event] = field(default=None, repr=False, compare=False)


# UttInfo.skipped of a clause recognised in a pause before its endpoint was confirmed, when the speaker
# went on: its speech was never played, and no caption shows it (simultaneous.TentativeTails).
DROPPED_TAIL = "a tail recognised in a pause, dropped: the speaker went on"


@dataclass(frozen=True)
class Block:
    """A block of captured 16 kHz mono audio, stamped when it entered the program."""

    samples: np.ndarray
    t_arrival: float


@dataclass(frozen=True)
class SpeechSegment:
    utt: UttInfo
    audio: np.ndarray  # 16 kHz mono float32
    noise: np.ndarray  # recent non-speech audio, a noise profile for the denoiser


@dataclass(frozen=True)
class SpeechUpdate:
    """Simultaneous mode: the speech of an utterance heard so far, sent to the ASR every step
    while the speaker goes on; ``final`` is the segmenter's finished segment (all of it)."""

    audio: np.ndarray  # 16 kHz mono float32, from the utterance's start
    start_s: float  # where ``audio`` starts on the input timeline: the same for each update of one utterance
    t_speech_start: float  # wall clock when its first speech sample entered the program
    t_audio_end: float  # wall clock when the last sample of ``audio`` entered the program
    final: Optional[SpeechSegment] = None
    # A pause that may be the endpoint: the rest is recognised as at the end, and its speech held
    # until the endpoint confirms it. Where the speech before the pause ends, on the input timeline
    # (the finished segment's seg_end_s if the speaker does not go on), and on the wall clock.
    tentative: Optional[tuple[float, float]] = None


@dataclass(frozen=True)
class Transcript:
    utt: UttInfo
    text: str
    language: str  # language of the text (en after Whisper's translate task)


@dataclass(frozen=True)
class Translation:
    """The translation, or a piece of it: a translator that streams sends each clause as it is
    ready (``more``: pieces of this utterance follow) and ends with an empty piece that has none."""

    utt: UttInfo
    text: str
    piece: int = 0  # its place among the utterance's pieces
    more: bool = False


@dataclass(frozen=True)
class AudioChunk:
    utt: UttInfo
    samples: np.ndarray  # mono float32
    sample_rate: int


@dataclass(frozen=True)
class UtteranceEnd:
    """The last message of every utterance: it reached the end of the chain, spoken, empty or failed."""

    utt: UttInfo
