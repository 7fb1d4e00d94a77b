"""Conversations made from single-speaker recordings, with their true turns, and the diarization
error rate (DER) of a system's turns against them.

No multi-speaker recording with reference turns ships here, so tests and bench_diarization.py
build them: each speaker's clips are cut at their pauses into phrases, and the phrases of the
speakers are interleaved, a speaker's next phrase after a short gap or straight after the other
(a change with no pause, where a phrase-level cut would go wrong). The true turns are where each
piece's speech is (its energy above the piece's floor), not the silence around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.decode import load_audio

FRAME_S = 0.01


@dataclass(frozen=True)
class Conversation:
    audio: np.ndarray  # mono 16 kHz
    turns: list[tuple[float, float, int]]  # (start, end, speaker) of the speech, in time order


def pieces(audio: np.ndarray, min_pause_s: float = 0.25, min_piece_s: float = 1.0) -> list[np.ndarray]:
    """``audio`` cut in the middle of its pauses (20 ms frames under a tenth of the peak energy
    for ``min_pause_s``) into pieces of at least ``min_piece_s``; the silence at the ends dropped."""
    hop = int(0.02 * SAMPLE_RATE)
    energy = np.sqrt(np.mean(audio[: len(audio) // hop * hop].reshape(-1, hop) ** 2, axis=1))
    voiced = energy > 0.1 * energy.max()
    idx = np.flatnonzero(voiced)
    if not len(idx):
        return []
    cuts, run_start = [idx[0]], None
    for i in range(idx[0], idx[-1] + 1):
        if not voiced[i] and run_start is None:
            run_start = i
        elif voiced[i] and run_start is not None:
            if (i - run_start) * 0.02 >= min_pause_s and (run_start + i) // 2 - cuts[-1] >= min_piece_s / 0.02:
                cuts.append((run_start + i) // 2)
            run_start = None
    cuts.append(idx[-1] + 1)
    return [audio[a * hop:b * hop] for a, b in zip(cuts, cuts[1:])]


def speech_span(piece: np.ndarray) -> tuple[float, float]:
    """Where in ``piece`` the speech begins and ends (20 ms frames above a tenth of the peak energy)."""
    hop = int(0.02 * SAMPLE_RATE)
    energy = np.sqrt(np.mean(piece[: len(piece) // hop * hop].reshape(-1, hop) ** 2, axis=1))
    idx = np.flatnonzero(energy > 0.1 * energy.max())
    return idx[0] * 0.02, (idx[-1] + 1) * 0.02


def build(speakers: Sequence[Sequence[str | Path]], seed: int = 0, max_turns: int = 40) -> Conversation:
    """A conversation of ``speakers`` (each a list of that speaker's recordings), levelled to one
    loudness, their phrases interleaved in a random order of speakers (never the same twice in a
    row); gaps of 0-0.8 s, a third of them none."""
    rng = np.random.default_rng(seed)
    queues = []
    for clips in speakers:
        queue = []
        for clip in clips:
            audio = load_audio(clip)
            audio = audio / max(float(np.sqrt(np.mean(audio ** 2))), 1e-6) * 0.05
            queue += pieces(audio)
        queues.append(queue)
    out, turns, t, last = [np.zeros(int(0.5 * SAMPLE_RATE), np.float32)], [], 0.5, -1
    while any(queues) and len(turns) < max_turns:
        choices = [s for s, q in enumerate(queues) if q and s != last] or [s for s, q in enumerate(queues) if q]
        speaker = int(rng.choice(choices))
        piece = queues[speaker].pop(0)
        gap = 0.0 if rng.random() < 1 / 3 else float(rng.uniform(0.2, 0.8))
        out.append(np.zeros(int(gap * SAMPLE_RATE), np.float32))
        t += gap
        a, b = speech_span(piece)
        turns.append((t + a, t + b, speaker))
        out.append(piece.astype(np.float32))
        t += len(piece) / SAMPLE_RATE
        last = speaker
    out.append(np.zeros(int(0.5 * SAMPLE_RATE), np.float32))
    return Conversation(np.concatenate(out), turns)


def der(reference: Sequence[tuple[float, float, int]], hypothesis: Sequence[tuple[float, float, int]],
        collar_s: float = 0.25, score_overlap: bool = True) -> dict[str, float]:
    """Diarization error rate, NIST-style on 10 ms frames: missed speech, false alarm and speaker
    confusion (under the best one-to-one mapping of hypothesis to reference speakers), each as a
    share of the reference speech; ``collar_s`` either side of every reference boundary is not
    scored. Turns may overlap (a meeting's do): a frame where n reference speakers talk counts n
    (a hypothesis that names one of two misses the other); ``score_overlap=False`` leaves those
    frames out, as the usual "overlap not scored" figures do. ``overlap_s``: reference overlap."""
    from scipy.optimize import linear_sum_assignment

    end = max([e for _, e, _ in [*reference, *hypothesis]] + [0.0])
    n = int(np.ceil(end / FRAME_S)) + 1
    ref, hyp = _frames(reference, n), _frames(hypothesis, n)
    overlapped = ref.sum(axis=1) > 1
    scored = np.ones(n, bool)
    for a, b, _ in reference:
        for edge in (a, b):
            scored[max(0, int((edge - collar_s) / FRAME_S)):int((edge + collar_s) / FRAME_S) + 1] = False
    overlap_s = float((overlapped & scored).sum() * FRAME_S)
    if not score_overlap:
        scored &= ~overlapped
    ref, hyp = ref[scored], hyp[scored]
    n_ref, n_hyp = ref.sum(axis=1), hyp.sum(axis=1)
    together = ref.T.astype(int) @ hyp.astype(int)  # frames each reference and hypothesis speaker share
    rows, cols = linear_sum_assignment(-together) if together.size else ([], [])
    correct = int(together[rows, cols].sum()) if together.size else 0
    speech = int(n_ref.sum())
    missed, false_alarm = int(np.maximum(n_ref - n_hyp, 0).sum()), int(np.maximum(n_hyp - n_ref, 0).sum())
    confusion = int(np.minimum(n_ref, n_hyp).sum()) - correct
    share = 100.0 / max(speech, 1)
    return {"der": (missed + false_alarm + confusion) * share, "missed": missed * share,
            "false_alarm": false_alarm * share, "confusion": confusion * share, "speech_s": speech * FRAME_S,
            "overlap_s": overlap_s, "speakers_ref": int(ref.any(axis=0).sum()), "speakers_hyp": int(hyp.any(axis=0).sum())}


def _frames(turns: Sequence[tuple[float, float, int]], n: int) -> np.ndarray:
    """(frames, speakers) booleans: who speaks in each frame (speakers numbered from 0)."""
    labels = np.zeros((n, max([s for *_, s in turns] + [-1]) + 1), bool)
    for a, b, speaker in turns:
        labels[int(round(a / FRAME_S)):int(round(b / FRAME_S)), speaker] = True
    return labels
