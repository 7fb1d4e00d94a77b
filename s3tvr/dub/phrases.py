"""Phrases to dub: speech found by Silero VAD, timed and joined into sentences by the ASR's words.

A phrase cut mid-sentence translates badly, so VAD regions are only where to listen: the words
the ASR hears in them are regrouped into whole sentences (a sentence mark ends a phrase), broken
at long pauses (to stay in sync), at a change of speaker (a phrase is one person's), and kept
under a maximum length (broken at a clause mark when there is one). Each phrase spans its first
word's start to its last word's end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from s3tvr.audio import SAMPLE_RATE
from s3tvr.backends.kinds import Word

SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")
CLAUSE_END = (",", ";", ":", "，", "、")
MIN_PHRASE_S = 0.3


@dataclass
class Phrase:
    id: int
    start: float  # seconds on the input's timeline
    end: float
    source: str
    translation: str = ""
    confidence: float = 1.0  # mean word probability: picks the cleanest stretch for the voice
    speaker: str = ""  # who says it (S1, S2 ... or a name from the speakers file); "" when not diarized
    shortened: str = ""  # the first translation, when it was too long to fit and the translator made a shorter one
    # where diarization heard a second voice at once: who, and for how long (the phrase is the
    # dominant speaker's; the other's words under it are not dubbed apart)
    overlap_with: str = ""
    overlap_s: float = 0.0
    words: list[Word] = field(default_factory=list, repr=False)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "start": round(self.start, 3), "end": round(self.end, 3), "speaker": self.speaker,
                "source": self.source, "translation": self.translation, **({"longer": self.shortened} if self.shortened else {}),
                **({"overlap": {"with": self.overlap_with, "seconds": round(self.overlap_s, 2)}} if self.overlap_s else {})}


def group_words(words: list[Word], max_phrase_s: float = 12.0, max_pause_s: float = 1.5,
                speaker_at: Optional[Callable[[float], str]] = None, total: Optional[float] = None) -> list[Phrase]:
    """Words (absolute times, in order) into sentence phrases; with ``speaker_at`` (the speaker at
    a time), each word is its middle's speaker's and a phrase never spans two; with ``total`` (the
    input's length), the last phrase's slot ends within it."""
    speaker_of = (lambda w: speaker_at((w.start + w.end) / 2)) if speaker_at else (lambda w: "")
    groups: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        if current:
            ended = current[-1].text.endswith(SENTENCE_END)
            pause = word.start - current[-1].end
            if ended or pause > max_pause_s or speaker_of(word) != speaker_of(current[-1]):
                groups.append(current)
                current = []
            elif word.end - current[0].start > max_phrase_s:
                cut = max((i for i, w in enumerate(current[:-1]) if w.text.endswith(CLAUSE_END)), default=None)
                if cut is None:
                    groups.append(current)
                    current = []
                else:
                    groups.append(current[:cut + 1])
                    current = current[cut + 1:]
        current.append(word)
    if current:
        groups.append(current)
    phrases = [Phrase(i, g[0].start, g[-1].end, _join(g), confidence=float(np.mean([w.probability for w in g])),
                      speaker=speaker_of(g[0]), words=g)
               for i, g in enumerate(groups)]
    for i, p in enumerate(phrases):  # a slot to speak in (ASRs may stamp a word with no length) ...
        p.end = max(p.end, p.start + MIN_PHRASE_S)
        limit = phrases[i + 1].start if i + 1 < len(phrases) else total
        if limit is not None:  # ... that never runs into the next phrase, nor past the end (an edit of it would be refused)
            p.end = max(p.start + 0.01, min(p.end, limit))
    return phrases


def _join(words: list[Word]) -> str:
    text = " ".join(w.text for w in words)
    return text.replace(" ,", ",").replace(" .", ".").strip()


def transcribe_regions(asr: Any, audio: np.ndarray, regions: list[tuple[float, float]], on_region=lambda: None,
                       hotwords: Sequence[str] = ()) -> list[Word]:
    """The words of every region, on the input's timeline; words that a region's pre-roll shares
    with the previous region are not counted twice. ``hotwords``: a glossary's (AsrBackend.transcribe)."""
    words: list[Word] = []
    for start, end in regions:
        clip = audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)]
        for w in asr.words(clip, hotwords):
            if words and start + w.start < words[-1].end - 0.05:
                continue
            words.append(Word(w.text, start + w.start, start + w.end, w.probability))
        on_region()
    return words
