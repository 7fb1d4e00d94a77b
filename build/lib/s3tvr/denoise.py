"""Spectral-gating denoiser (noisereduce), with a noise profile from recent non-speech audio."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from s3tvr.config import DenoiseConfig
from s3tvr.messages import SAMPLE_RATE, SpeechSegment
from s3tvr.pipeline import Stage

MIN_PROFILE_S = 0.25  # shorter profiles estimate the noise badly; fall back to non-stationary gating


class Denoiser(Stage):
    name = "denoise"
    backend = "noisereduce"
    thread_safe = True

    def __init__(self, config: DenoiseConfig):
        self.config = config

    def setup(self) -> None:
        import noisereduce

        self._nr = noisereduce

    def process(self, item: SpeechSegment) -> Iterator[SpeechSegment]:
        yield SpeechSegment(item.utt, denoise(self._nr, item.audio, item.noise, self.config.prop_decrease), item.noise)


def denoise(nr, audio: np.ndarray, noise: np.ndarray, prop_decrease: float) -> np.ndarray:
    if len(noise) >= MIN_PROFILE_S * SAMPLE_RATE:
        out = nr.reduce_noise(y=audio, sr=SAMPLE_RATE, y_noise=noise, stationary=True, prop_decrease=prop_decrease, n_jobs=1)
    else:
        out = nr.reduce_noise(y=audio, sr=SAMPLE_RATE, stationary=False, prop_decrease=prop_decrease, n_jobs=1)
    return np.asarray(out, dtype=np.float32)
