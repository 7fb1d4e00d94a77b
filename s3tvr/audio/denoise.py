"""Spectral-gating denoiser (noisereduce), with a noise profile from recent non-speech audio.

:class:`Denoiser` is a plain model (``clean(audio, noise)``); the live pipeline runs it through
:class:`~s3tvr.live.stages.DenoiseStage`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from s3tvr.audio import SAMPLE_RATE
from s3tvr.config import DenoiseConfig

MIN_PROFILE_S = 0.25  # shorter profiles estimate the noise badly; fall back to non-stationary gating


class Denoiser:
    name = "denoise"
    backend = "noisereduce"
    thread_safe = True

    def __init__(self, config: DenoiseConfig):
        self.config = config
        self._nr: Any = None

    def setup(self) -> None:
        import noisereduce

        self._nr = noisereduce

    def clean(self, audio: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """``audio`` (16 kHz) with the noise that ``noise`` (recent non-speech audio) profiles cut down."""
        return denoise(self._nr, audio, noise, self.config.prop_decrease)

    def cleanup(self) -> None:
        self._nr = None


def denoise(nr, audio: np.ndarray, noise: np.ndarray, prop_decrease: float, rate: int = SAMPLE_RATE,
            n_std: float = 1.5) -> np.ndarray:
    """Spectral gating: bins under the noise profile's mean + ``n_std`` deviations are cut by ``prop_decrease``."""
    if len(noise) >= MIN_PROFILE_S * rate:
        out = nr.reduce_noise(y=audio, sr=rate, y_noise=noise, stationary=True, prop_decrease=prop_decrease,
                              n_std_thresh_stationary=n_std, n_jobs=1)
    else:
        out = nr.reduce_noise(y=audio, sr=rate, stationary=False, prop_decrease=prop_decrease, n_jobs=1)
    return np.asarray(out, dtype=np.float32)
