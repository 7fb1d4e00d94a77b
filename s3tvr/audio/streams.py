"""Audio as it streams in pieces: cut into fixed blocks, or resampled across the joins.

Every source hands the segmenter 16 kHz blocks of :data:`BLOCK` samples, whatever size of piece
its device or client delivers (:class:`Reblocker`); every sink resamples each utterance's chunks
to its own rate as one stream, so no click marks where one chunk ends (:class:`Resampler`).
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import soxr

BLOCK = 512  # 32 ms at 16 kHz: Silero VAD's window, the block every source yields


class Reblocker:
    """Cuts pieces of any length into blocks of ``size`` samples; what is left waits for the next piece."""

    def __init__(self, size: int = BLOCK):
        self.size = size
        self._pending = np.zeros(0, dtype=np.float32)

    def push(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        """The whole blocks that ``samples`` completes, in order."""
        pending = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        whole = len(pending) - len(pending) % self.size
        for i in range(0, whole, self.size):
            yield pending[i:i + self.size]
        self._pending = pending[whole:]

    def rest(self) -> np.ndarray:
        """What is left after the last whole block (the input ended): a shorter block, or nothing."""
        rest, self._pending = self._pending, np.zeros(0, dtype=np.float32)
        return rest


class Resampler:
    """Resamples the chunks of each stream (an utterance, keyed by the caller) to ``rate`` without
    clicks at their joins, and clips to [-1, 1] (resampling overshoots a full-scale voice; 16-bit
    files would wrap around)."""

    def __init__(self, rate: int):
        self.rate = rate
        self._streams: dict[Any, soxr.ResampleStream] = {}

    def chunk(self, key: Any, samples: np.ndarray, rate: int) -> np.ndarray:
        samples = samples.astype(np.float32, copy=False)
        if rate != self.rate:
            if key not in self._streams:
                self._streams[key] = soxr.ResampleStream(rate, self.rate, 1, dtype="float32")
            samples = self._streams[key].resample_chunk(samples)
        return np.clip(samples, -1.0, 1.0)

    def end(self, key: Any) -> np.ndarray:
        """The stream's last samples (the resampler's delay), once it has ended."""
        stream = self._streams.pop(key, None)
        if stream is None:
            return np.zeros(0, dtype=np.float32)
        return np.clip(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True), -1.0, 1.0)
