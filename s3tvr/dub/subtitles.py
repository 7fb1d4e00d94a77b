"""Subtitles of the dub's phrases: SubRip (.srt) and WebVTT (.vtt), source and translation, and
the same cues as a video's subtitle tracks show them.

A cue is (start, end, text), or (start, end, text, speaker): a cue with a speaker is labelled
"NAME: text" (in WebVTT, a voice span ``<v NAME>``, which players show or style as they choose).
How a cue is written and its text made safe is :mod:`s3tvr.text.cues`' (live captions write theirs too)."""

from __future__ import annotations

from typing import Sequence, Union

from s3tvr.text.cues import cue_block, one_line, srt_lines, vtt_escaped

__all__ = ["Cue", "render", "shown", "vtt_escaped"]

Cue = Union[tuple[float, float, str], tuple[float, float, str, str]]


def _speaker(cue: Cue) -> str:
    return one_line(cue[3]) if len(cue) > 3 else ""


def shown(cues: Sequence[Cue]) -> list[tuple[float, float, str]]:
    """The cues with text, as a subtitle track shows them: (start, end, lines joined by \\n), labelled
    "NAME: " where a cue has a speaker (the lines of the .srt file)."""
    return [(cue[0], cue[1], srt_lines(cue[2], _speaker(cue))) for cue in cues if cue[2].strip()]


def render(cues: Sequence[Cue], fmt: str) -> str:
    """``cues``: (start, end, text), or (start, end, text, speaker). ``fmt``: srt or vtt."""
    blocks = ["WEBVTT"] if fmt == "vtt" else []
    said = [cue for cue in cues if cue[2].strip()]
    blocks += [cue_block(n, cue[0], cue[1], cue[2], fmt, _speaker(cue)) for n, cue in enumerate(said, 1)]
    return "\n\n".join(blocks) + "\n"
