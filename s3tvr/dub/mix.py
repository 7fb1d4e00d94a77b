"""Audio work of the dub: Rubber Band time-stretching and the mix of the dubbed speech over a
background: the original with its speech ducked, or its accompaniment stem (loudness matching is
in :mod:`s3tvr.audio.loudness`, separation in :mod:`s3tvr.audio.separation`)."""

from __future__ import annotations

import numpy as np

FADE_S = 0.05  # ducking ramps: no clicks at phrase edges


def stretch(audio: np.ndarray, rate: int, tempo: float) -> np.ndarray:
    """``audio`` played ``tempo`` times faster at the same pitch (Rubber Band via pedalboard)."""
    if abs(tempo - 1.0) < 1e-3 or len(audio) == 0:
        return audio
    from pedalboard import time_stretch

    return time_stretch(audio[None, :].astype(np.float32), float(rate), stretch_factor=float(tempo),
                        high_quality=True)[0]


def duck_envelope(samples: int, rate: int, regions: list[tuple[float, float]], duck_db: float) -> np.ndarray:
    """1.0 outside ``regions``, ``duck_db`` inside them, with short linear ramps."""
    env = np.ones(samples, dtype=np.float32)
    low = 0.0 if duck_db <= -90 else 10 ** (duck_db / 20)
    fade = max(1, int(FADE_S * rate))
    for start, end in regions:
        a, b = max(0, int(start * rate) - fade), min(samples, int(end * rate) + fade)
        if b <= a:
            continue
        seg = np.full(b - a, low, dtype=np.float32)
        n = min(fade, (b - a) // 2)
        if n:
            seg[:n] = np.linspace(1.0, low, n)
            seg[-n:] = np.linspace(low, 1.0, n)
        env[a:b] = np.minimum(env[a:b], seg)
    return env


def kept_background(original: np.ndarray, accompaniment: np.ndarray, rate: int,
                    untranslated: list[tuple[float, float]]) -> np.ndarray:
    """The background for ``--background keep``: the accompaniment stem, the old voice gone under
    the dub and in the gaps (where the voice stem holds only breaths and the separation's leaks),
    but back in ``untranslated`` phrases (the TTS failed), which would otherwise fall silent. The
    stems add up to the original, so the voice there is the original less the accompaniment."""
    if not untranslated:
        return accompaniment
    voice_gate = 1.0 - duck_envelope(original.shape[1], rate, untranslated, -90.0)
    return accompaniment + (original - accompaniment) * voice_gate[None, :]


def mix(background: np.ndarray, speech: np.ndarray, rate: int, regions: list[tuple[float, float]],
        duck_db: float) -> tuple[np.ndarray, float]:
    """The dubbed ``speech`` (mono) over every channel of ``background`` (channels, samples), ducked
    to ``duck_db`` in ``regions`` (none for an accompaniment stem). Scaled down if it would clip;
    returns the mix and the scale applied (1.0: none)."""
    out = background * duck_envelope(background.shape[1], rate, regions, duck_db)[None, :] + speech[None, :]
    peak = float(np.abs(out).max()) if out.size else 0.0
    scale = 0.99 / peak if peak > 0.99 else 1.0
    return (out * scale).astype(np.float32), scale
