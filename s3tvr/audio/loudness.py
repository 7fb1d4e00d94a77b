"""EBU R128 loudness with pyloudnorm: measuring integrated loudness and matching speech to a
target, used by dubbing and by fine-tuning data preparation."""

from __future__ import annotations

import math

import numpy as np

MAX_GAIN_DB = 20.0  # loudness matching never amplifies or cuts more than this


def loudness(audio: np.ndarray, rate: int) -> float:
    """Integrated loudness in LUFS of mono or (channels, samples) audio; -inf when too short or silent."""
    import pyloudnorm

    data = audio.T if audio.ndim == 2 else audio
    if len(data) < int(0.4 * rate) + 1:  # the meter's gating block
        return -math.inf
    return float(pyloudnorm.Meter(rate).integrated_loudness(data))


def match_loudness(speech: np.ndarray, rate: int, target_lufs: float) -> tuple[np.ndarray, float]:
    """``speech`` scaled to ``target_lufs``; returns it and the gain applied in dB."""
    current = loudness(speech, rate)
    if not math.isfinite(current) or not math.isfinite(target_lufs):
        return speech, 0.0
    gain_db = float(np.clip(target_lufs - current, -MAX_GAIN_DB, MAX_GAIN_DB))
    return speech * 10 ** (gain_db / 20), gain_db
