"""Lag control: translated speech that keeps up with the speaker.

Translated speech is often longer than its source (Spanish into English less so than English
into Spanish; a slow voice always), and in a long talk the difference piles up: the listener
hears each sentence later than the one before. A session's :class:`PacedTts` is its TTS stage over
the engine's TTS model and, when the translated audio the listener has not heard yet (the sink's ``backlog_s``)
passes ``audio.lag_s``, asks the TTS to speak faster, up to ``audio.max_rate`` at twice that
backlog, and cuts the silence at the ends of what it says to ``audio.max_gap_s``. The rate
used is the utterance's ``rate`` in the log.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from s3tvr.backends.kinds import TtsBackend
from s3tvr.live.messages import AudioChunk
from s3tvr.live.stages import TtsStage

SILENCE = 10 ** (-45 / 20)  # below -45 dBFS: the pauses a TTS leaves around its sentences


def pace(backlog_s: float, lag_s: float, max_rate: float) -> float:
    """The speaking rate for a backlog: 1.0 up to ``lag_s``, rising linearly to ``max_rate`` at twice it."""
    behind = min(max((backlog_s - lag_s) / lag_s, 0.0), 1.0)
    return 1.0 + (max_rate - 1.0) * behind


def trim_silence(samples: np.ndarray, rate: int, keep_s: float, lead: bool = True) -> np.ndarray:
    """``samples`` with the silence at its end (and at its start, with ``lead``) cut to ``keep_s``."""
    loud = np.flatnonzero(np.abs(samples) > SILENCE)
    if not len(loud):
        return samples[: int(keep_s * rate)]
    keep = int(keep_s * rate)
    start = max(0, loud[0] - keep) if lead else 0
    return samples[start: loud[-1] + 1 + keep]


class PacedTts(TtsStage):
    """One session's TTS stage over the engine's TTS model (same name, so the same lock), paced by
    ``backlog``, a callable giving the seconds of translated audio written but not yet heard."""

    def __init__(self, tts: TtsBackend, backlog: Callable[[], float], lag_s: float, max_rate: float, max_gap_s: float):
        super().__init__(tts)
        self.backlog = backlog
        self.lag_s, self.max_rate, self.max_gap_s = lag_s, max_rate, max_gap_s

    def process(self, item: Any) -> Iterator[Any]:
        utt = item.utt
        backlog = self.backlog()
        behind = backlog > self.lag_s
        if behind and self.model.speaking_rate:
            utt.rate = pace(backlog, self.lag_s, self.max_rate)
        first = True
        for out in super().process(item):
            if behind:
                # Silence at the ends of each piece (a TTS pauses after every sentence) is where
                # a listener who is behind loses the least.
                samples = trim_silence(out.samples, out.sample_rate, self.max_gap_s, lead=first)
                utt.out_dur_s -= (len(out.samples) - len(samples)) / out.sample_rate
                out = AudioChunk(utt, samples, out.sample_rate)
                first = False
            yield out
