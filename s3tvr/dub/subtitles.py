"""Subtitles of the dub's phrases: SubRip (.srt) and WebVTT (.vtt), source and translation."""

from __future__ import annotations

import textwrap
from typing import Sequence

LINE = 42  # characters per subtitle line (the usual broadcast limit)


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def render(cues: Sequence[tuple[float, float, str]], fmt: str) -> str:
    """``cues``: (start, end, text). ``fmt``: srt or vtt."""
    sep = "," if fmt == "srt" else "."
    blocks = ["WEBVTT"] if fmt == "vtt" else []
    n = 0
    for start, end, text in cues:
        if not text.strip():
            continue
        n += 1
        lines = "\n".join(textwrap.wrap(text.strip(), LINE)) or text.strip()
        head = f"{n}\n" if fmt == "srt" else ""
        blocks.append(f"{head}{_stamp(start, sep)} --> {_stamp(end, sep)}\n{lines}")
    return "\n\n".join(blocks) + "\n"
