"""Spectral-gating denoiser (noisereduce), with a noise profile from recent non-speech audio."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from s3tvr.config import DenoiseConfig
from s3tvr.live.messages import SAMPLE_RATE, SpeechSegment
from s3tvr.live.pipeline import Stage

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


def denoise(nr, audio: np.ndarray, noise: np.ndarray, prop_decrease: float, rate: int = SAMPLE_RATE,
            n_std: float = 1.5) -> np.ndarray:
    """Spectral gating: bins under the noise profile's mean + ``n_std`` deviations are cut by ``prop_decrease``."""
    if len(noise) >= MIN_PROFILE_S * rate:
        out = nr.reduce_noise(y=audio, sr=rate, y_noise=noise, stationary=True, prop_decrease=prop_decrease,
                              n_std_thresh_stationary=n_std, n_jobs=1)
    else:
        out = nr.reduce_noise(y=audio, sr=rate, stationary=False, prop_decrease=prop_decrease, n_jobs=1)
    return np.asarray(out, dtype=np.float32)
