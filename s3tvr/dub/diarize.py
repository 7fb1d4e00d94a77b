"""Who speaks when: speaker embeddings over short windows of the speech the VAD found, clustered
into speakers, then every tenth of a second given the speaker nearest to the windows over it.

    VAD regions → Resemblyzer embeddings, 1.6 s windows every 0.4 s → agglomerative clustering
    (cosine distance, average linkage; the number of speakers from a distance threshold, or as
    given) → each 0.1 s frame: the speaker whose centroid is nearest the mean of the windows
    over it → turns

Clusters are made from full windows only: a region shorter than a window (a back-channel "sí",
"okay") gives one padded window too noisy to found a speaker, so it joins the speaker it sounds
most like. A found speaker with less than ``MIN_SPEAKER_S`` of speech is folded into the nearest
other one unless the number of speakers was given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from s3tvr.audio import SAMPLE_RATE
from s3tvr.backends.voice_similarity import SpeakerEncoder

log = logging.getLogger(__name__)

WINDOW_S = 1.6  # Resemblyzer's partial utterance
STEP_S = 0.4
FRAME_S = 0.1
# Average-linkage cosine distance at which two clusters stay apart. Resemblyzer's 1.6 s windows of
# one FLEURS/LJSpeech reader sit 0.03-0.33 apart on average, of two readers 0.46-0.6; on 12 built
# conversations of 2-4 speakers every threshold from 0.38 to 0.44 found the right number of
# speakers (0.32: too many in 11, 0.5: too few in 9). The middle of that range.
THRESHOLD = 0.41
MIN_SPEAKER_S = 3.0


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: int


@dataclass
class Diarization:
    turns: list[Turn]  # in time order, never overlapping
    centroids: np.ndarray  # (speakers, 256), unit rows: speaker i's voice, to match across files
    seconds: list[float]  # speech per speaker

    @property
    def speakers(self) -> int:
        return len(self.centroids)

    def speaker_at(self, t: float) -> int:
        """The speaker of the turn at (or nearest to) time ``t``."""
        if not self.turns:
            return 0
        nearest = min(self.turns, key=lambda turn: 0.0 if turn.start <= t <= turn.end else min(abs(t - turn.start), abs(t - turn.end)))
        return nearest.speaker


def diarize(speech16k: np.ndarray, regions: list[tuple[float, float]], encoder: SpeakerEncoder,
            speakers: Optional[int] = None) -> Diarization:
    """Turns of the speech in ``regions`` (seconds on ``speech16k``'s timeline)."""
    windows, spans, full = _windows(speech16k, regions, encoder)
    labels = _cluster(windows[full], speakers) if full.any() else np.zeros(0, int)
    centroids = _centroids(windows[full], labels) if len(labels) else _unit(windows.mean(axis=0, keepdims=True))
    if speakers is None:
        centroids = _fold_small(centroids, windows[full], labels)
    frames = _frame_labels(windows, spans, centroids, regions)
    turns = _turns(frames)
    seconds = [sum(t.end - t.start for t in turns if t.speaker == s) for s in range(len(centroids))]
    return _renumber(turns, centroids, seconds)


def _windows(speech16k: np.ndarray, regions: list[tuple[float, float]],
             encoder: SpeakerEncoder) -> tuple[np.ndarray, list[tuple[float, float]], np.ndarray]:
    """Embeddings of the windows of every region, their spans, and which are full windows."""
    embeds, spans, full = [], [], []
    for start, end in regions:
        clip = speech16k[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)]
        for e, (a, b) in zip(*encoder.windows(clip, STEP_S)):
            embeds.append(e)
            spans.append((start + a, min(start + b, end)))
            full.append(b <= (end - start) + 0.05)
    return np.array(embeds, dtype=np.float32), spans, np.array(full, dtype=bool)


def _cluster(x: np.ndarray, speakers: Optional[int]) -> np.ndarray:
    if len(x) < 2:
        return np.zeros(len(x), int)
    from sklearn.cluster import AgglomerativeClustering

    if speakers is not None:
        n = min(speakers, len(x))
        return AgglomerativeClustering(n_clusters=n, metric="cosine", linkage="average").fit_predict(x)
    return AgglomerativeClustering(n_clusters=None, distance_threshold=THRESHOLD, metric="cosine",
                                   linkage="average").fit_predict(x)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def _centroids(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return _unit(np.stack([x[labels == k].mean(axis=0) for k in range(labels.max() + 1)]))


def _fold_small(centroids: np.ndarray, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Centroids less those of clusters with under MIN_SPEAKER_S of windows (a cough, a laugh,
    a stretch of music): their windows go to whichever speaker they sound most like."""
    if len(labels) == 0:
        return centroids
    counts = np.bincount(labels, minlength=len(centroids))
    big = counts * STEP_S >= MIN_SPEAKER_S
    if big.all() or not big.any():
        return centroids
    nearest = np.argmax(x @ centroids[big].T, axis=1)
    return _centroids(x, nearest)


def _frame_labels(windows: np.ndarray, spans: list[tuple[float, float]], centroids: np.ndarray,
                  regions: list[tuple[float, float]]) -> list[tuple[float, int]]:
    """(time, speaker) every FRAME_S inside the regions: the centroid nearest the mean of the
    windows over the frame."""
    starts = np.array([a for a, _ in spans])
    ends = np.array([b for _, b in spans])
    frames = []
    for start, end in regions:
        for t in np.arange(start + FRAME_S / 2, end, FRAME_S):
            over = (starts <= t) & (t < ends)
            if not over.any():
                over = np.abs((starts + ends) / 2 - t) == np.min(np.abs((starts + ends) / 2 - t))
            mean = _unit(windows[over].mean(axis=0))
            frames.append((float(t), int(np.argmax(centroids @ mean))))
    return frames


def _turns(frames: list[tuple[float, int]]) -> list[Turn]:
    """Runs of one speaker's frames; a gap longer than a frame ends a turn too."""
    turns: list[Turn] = []
    for t, speaker in frames:
        a, b = t - FRAME_S / 2, t + FRAME_S / 2
        last = turns[-1] if turns else None
        if last and last.speaker == speaker and a - last.end < FRAME_S / 2:
            turns[-1] = Turn(last.start, b, speaker)
        else:
            turns.append(Turn(a, b, speaker))
    return turns


def _renumber(turns: list[Turn], centroids: np.ndarray, seconds: list[float]) -> Diarization:
    """Speakers that kept any turn, numbered by who speaks first."""
    order: list[int] = []
    for turn in turns:
        if turn.speaker not in order:
            order.append(turn.speaker)
    new = {old: i for i, old in enumerate(order)}
    return Diarization([Turn(t.start, t.end, new[t.speaker]) for t in turns],
                       centroids[order] if order else centroids[:1], [seconds[o] for o in order] or [0.0])
