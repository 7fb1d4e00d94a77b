"""What s3tvr does with words: sentence and clause splitting for MT and TTS (here: nothing
truncated, every piece under a length limit), caption cues (:mod:`~s3tvr.text.cues`) and the
words a user chose (:mod:`~s3tvr.text.glossary`)."""

from __future__ import annotations

import re

# Sentence ends: Latin/Cyrillic punctuation followed by a space, or CJK/Devanagari ends anywhere.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？।])")
_CLAUSE_END = re.compile(r"(?<=[,;:，、；：])\s*")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, keeping their punctuation: "Hola. ¿Qué tal?" -> ["Hola.", "¿Qué tal?"]."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s and s.strip()]


def split_clauses(text: str, min_words: int = 4, max_words: int = 12) -> list[str]:
    """``text`` in the pieces a TTS can speak one by one: its sentences, and a sentence longer than
    ``max_words`` cut at its clause marks into clauses of at least ``min_words`` (shorter clauses
    join the next), so the first can play while the rest is synthesised. "However, due to the slow
    channels of that time, styles could lag behind by years." -> ["However, due to the slow channels
    of that time,", "styles could lag behind by years."]. Nothing is dropped or reordered."""
    pieces: list[str] = []
    for sentence in split_sentences(text):
        if len(sentence.split()) <= max_words:
            pieces.append(sentence)
            continue
        clauses: list[str] = []
        current = ""
        for part in (p.strip() for p in _CLAUSE_END.split(sentence)):
            current = f"{current} {part}".strip()
            if len(current.split()) >= min_words:
                clauses.append(current)
                current = ""
        if current:  # a short tail joins the clause before it
            clauses[-1:] = [f"{clauses[-1]} {current}"] if clauses else [current]
        pieces += clauses
    return pieces


def split_lead(pieces: list[str], words: int) -> list[str]:
    """``pieces`` with the first cut after ``words`` words when it is more than twice that long:
    a slow TTS then starts speaking after a few words instead of a whole clause (the join costs a
    little prosody once per utterance). Nothing is dropped or reordered."""
    if not pieces or words <= 0:
        return pieces
    head = pieces[0].split()
    if len(head) <= 2 * words:
        return pieces
    return [" ".join(head[:words]), " ".join(head[words:]), *pieces[1:]]


def split_to_limit(text: str, limit: int) -> list[str]:
    """Sentences of ``text``, each at most ``limit`` characters: a longer sentence is cut at clause
    ends, then at word boundaries, then (for text without spaces) anywhere. Nothing is dropped."""
    pieces: list[str] = []
    for sentence in split_sentences(text):
        pieces += _fit(sentence, limit)
    return pieces


def _fit(sentence: str, limit: int) -> list[str]:
    if len(sentence) <= limit:
        return [sentence]
    for splitter in (_CLAUSE_END, re.compile(r"\s+")):
        parts = [p for p in splitter.split(sentence) if p]
        if len(parts) > 1:
            return _pack(parts, limit, " " if splitter is not _CLAUSE_END or " " in sentence else "")
    return [sentence[i:i + limit] for i in range(0, len(sentence), limit)]


def _pack(parts: list[str], limit: int, sep: str) -> list[str]:
    """Join consecutive parts while they fit; parts that alone exceed the limit are cut further."""
    out: list[str] = []
    current = ""
    for part in parts:
        candidate = f"{current}{sep}{part}" if current else part
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            out.append(current)
        if len(part) <= limit:
            current = part
        else:
            out += _fit(part, limit)
            current = ""
    if current:
        out.append(current)
    return out
