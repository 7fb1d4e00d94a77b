"""The echo guard: in full duplex on a loudspeaker, the microphone hears the translation that s3tvr
just played; an utterance that is mostly that is not translated again.

The speaker's audio callback hands :meth:`EchoGuard.played` what actually left the speaker and
when (the one place that knows both). For each speech segment the segmenter cuts,
:meth:`EchoGuard.score` builds the reference, what was played from ``max_delay_s`` before the
segment's first sample to its last, at 16 kHz, and measures how much of the segment's power is
that reference, heard through the room: nothing played then is 0 at once (no model, no cost).

The measure (:data:`MEASURES`, compared on looped-back real speech by benchmarks/bench_echo.py):
``coherence``, the fraction of the segment's power linearly predictable from the reference, per
frequency (Welch's cross-spectrum at the delay GCC-PHAT finds): a room's filtering and any
loudness leave it near 1 for an echo, while a person speaking over the translation (double talk)
brings it down to the echo's share of the power. A segment is judged echo above ``threshold``:
mostly our own output.
"""

from __future__ import annotations

import collections
import math
import threading
from typing import Callable, Optional

import numpy as np

from s3tvr.audio import SAMPLE_RATE

# UttInfo.skipped of an utterance the echo guard judged to be our own output coming back.
ECHO_HEARD = "our own translation heard back (echo guard)"

EARLY_S = 0.1  # the speaker's stamp may be this much later than the sound (its reported latency is an estimate)
BAND_HZ = (100.0, 7000.0)  # the speech band the measures look at
SILENT_RMS = 1e-4  # a reference quieter than this (-80 dBFS) was not playing: not echo


def _cross_correlation(mic: np.ndarray, ref: np.ndarray, phase_only: bool = False) -> np.ndarray:
    """``mic`` against ``ref`` at each offset into ``ref`` (0..len(ref)-len(mic)), through the FFT;
    ``phase_only``: GCC-PHAT's, the cross-spectrum's phase alone."""
    n, m = len(mic), len(ref)
    size = 1 << math.ceil(math.log2(n + m))
    cross = np.fft.rfft(ref, size) * np.conj(np.fft.rfft(mic, size))
    if phase_only:
        cross /= np.abs(cross) + 1e-12
    return np.fft.irfft(cross, size)[: m - n + 1]


def _gcc_phat_lag(mic: np.ndarray, ref: np.ndarray) -> int:
    """Where ``mic`` sits in ``ref`` (the offset into ``ref``), by GCC-PHAT: the phase of the
    cross-spectrum only, so a room's colouring does not move the peak."""
    return int(np.argmax(_cross_correlation(mic, ref, phase_only=True)))


def ncc_score(mic: np.ndarray, ref: np.ndarray) -> float:
    """The highest normalised cross-correlation of the waveforms over the delays ``ref`` allows."""
    n, m = len(mic), len(ref)
    corr = _cross_correlation(mic, ref)
    energy = np.concatenate([[0.0], np.cumsum(ref.astype(np.float64) ** 2)])
    window = energy[n:] - energy[: m - n + 1]
    ncc = corr / np.sqrt(np.maximum(window, 1e-12) * max(float(np.dot(mic, mic)), 1e-12))
    return float(np.clip(ncc.max(), 0.0, 1.0))


def _envelope(x: np.ndarray, hop: int = 160) -> np.ndarray:
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    return np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))


def envelope_score(mic: np.ndarray, ref: np.ndarray) -> float:
    """The highest correlation (Pearson) of the 10 ms loudness envelopes over the delays allowed."""
    em, er = _envelope(mic), _envelope(ref)
    k = len(em)
    if k < 2 or len(er) < k:
        return 0.0
    em = em - em.mean()
    num = np.correlate(er, em, "valid")
    s1 = np.concatenate([[0.0], np.cumsum(er)])
    s2 = np.concatenate([[0.0], np.cumsum(er ** 2)])
    win1, win2 = s1[k:] - s1[:-k], s2[k:] - s2[:-k]
    var = np.maximum(win2 - win1 ** 2 / k, 1e-18)
    r = num / np.sqrt(var * max(float(np.dot(em, em)), 1e-18))
    return float(np.clip(r.max(), 0.0, 1.0))


def coherence_score(mic: np.ndarray, ref: np.ndarray, nperseg: int = 1024) -> float:
    """The fraction of ``mic``'s power (speech band) linearly predictable from ``ref`` at the delay
    GCC-PHAT finds: sum |Sxy|^2 / Sxx over sum Syy, Welch's estimates (Hann, half overlap)."""
    from scipy.signal import csd, welch

    n = len(mic)
    lag = _gcc_phat_lag(mic, ref)
    x = ref[lag:lag + n]
    seg = min(nperseg, n)
    f, pxy = csd(x, mic, fs=SAMPLE_RATE, nperseg=seg)
    _, pxx = welch(x, fs=SAMPLE_RATE, nperseg=seg)
    _, pyy = welch(mic, fs=SAMPLE_RATE, nperseg=seg)
    band = (f >= BAND_HZ[0]) & (f <= BAND_HZ[1])
    total = float(pyy[band].sum())
    if total <= 0:
        return 0.0
    explained = float((np.abs(pxy[band]) ** 2 / np.maximum(pxx[band], 1e-20)).sum())
    return float(min(1.0, explained / total))


MEASURES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "coherence": coherence_score, "envelope": envelope_score, "ncc": ncc_score}


class EchoGuard:
    """What the speaker played lately, and whether a segment of the microphone is mostly that.

    ``threshold``: a score above it is echo. ``max_delay_s``: the longest the sound takes from the
    speaker's stamp to the segment's stamp (the room, the input's buffers). ``keep_s``: how much of
    what was played is kept (a segment is at most vad.max_segment_s long)."""

    def __init__(self, threshold: float = 0.5, max_delay_s: float = 0.5, keep_s: float = 30.0, measure: str = "coherence"):
        self.threshold, self.max_delay_s, self.keep_s = threshold, max_delay_s, keep_s
        self.measure = MEASURES[measure]
        self._lock = threading.Lock()
        # Runs of contiguous playback: [wall clock of the first sample, rate, list of sample blocks, samples]
        self._runs: collections.deque = collections.deque()

    def played(self, samples: np.ndarray, rate: int, t_start: float) -> None:
        """``samples`` (mono) left the speaker from ``t_start`` (wall clock). Cheap: the audio
        callback calls it; the resampling waits until a segment asks."""
        with self._lock:
            run = self._runs[-1] if self._runs else None
            if run is not None and run[1] == rate and abs(run[0] + run[3] / rate - t_start) < 0.02:
                run[2].append(samples)
                run[3] += len(samples)
            else:
                self._runs.append([t_start, rate, [samples], len(samples)])
            while len(self._runs) > 1 and self._runs[0][0] + self._runs[0][3] / self._runs[0][1] < t_start - self.keep_s:
                self._runs.popleft()
            first = self._runs[0]
            if first[0] < t_start - 2 * self.keep_s and len(first[2]) > 1:  # one endless run: drop its oldest blocks
                old = first[2].pop(0)
                first[0] += len(old) / first[1]
                first[3] -= len(old)

    def reference(self, t0: float, t1: float) -> Optional[np.ndarray]:
        """What was played from ``t0`` to ``t1`` (wall clock) at 16 kHz, silence where nothing was;
        None if nothing was played then."""
        from scipy.signal import resample_poly

        n = int(round((t1 - t0) * SAMPLE_RATE))
        with self._lock:
            runs = [(t, rate, list(blocks)) for t, rate, blocks, count in self._runs if t < t1 and t + count / rate > t0]
        if not runs or n <= 0:
            return None
        out = np.zeros(n, dtype=np.float32)
        for t, rate, blocks in runs:
            audio = np.concatenate(blocks)
            a = max(0, int((t0 - t) * rate) - rate // 20)  # only the part in the window (and a little around it)
            b = min(len(audio), int((t1 - t) * rate) + rate // 20)
            if b <= a:
                continue
            g = math.gcd(SAMPLE_RATE, rate)
            piece = resample_poly(audio[a:b], SAMPLE_RATE // g, rate // g).astype(np.float32) if rate != SAMPLE_RATE else audio[a:b]
            at = int(round((t + a / rate - t0) * SAMPLE_RATE))
            lo, hi = max(0, at), min(n, at + len(piece))
            if hi > lo:
                out[lo:hi] = piece[lo - at:hi - at]
        if float(np.sqrt(np.mean(out ** 2))) < SILENT_RMS:
            return None
        return out

    def score(self, audio: np.ndarray, t_end: float) -> float:
        """How much of ``audio`` (16 kHz, its last sample entered the program at ``t_end``) is what
        was played: 0 (nothing played then, or none of it) to 1 (all of it)."""
        if len(audio) < SAMPLE_RATE // 10:
            return 0.0
        t_start = t_end - len(audio) / SAMPLE_RATE
        ref = self.reference(t_start - self.max_delay_s, t_end + EARLY_S)
        if ref is None:
            return 0.0
        return self.measure(audio.astype(np.float32, copy=False), ref)

    def is_echo(self, audio: np.ndarray, t_end: float) -> tuple[bool, float]:
        """(whether ``audio`` is mostly our own output, its score)."""
        s = self.score(audio, t_end)
        return s >= self.threshold, s
