"""Subtitles of the dub's phrases: SubRip (.srt) and WebVTT (.vtt), source and translation, and
the same cues as a video's subtitle tracks show them.

A cue is (start, end, text), or (start, end, text, speaker): a cue with a speaker is labelled
"NAME: text" (in WebVTT, a voice span ``<v NAME>``, which players show or style as they choose)."""

from __future__ import annotations

import textwrap
from typing import Sequence, Union

LINE = 42  # characters per subtitle line (the usual broadcast limit)

Cue = Union[tuple[float, float, str], tuple[float, float, str, str]]


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _speaker(cue: Cue) -> str:
    return " ".join(str(cue[3]).split()) if len(cue) > 3 else ""  # one line, whatever the label held


def _wrap(text: str) -> str:
    return "\n".join(textwrap.wrap(text.strip(), LINE)) or text.strip()


def shown(cues: Sequence[Cue]) -> list[tuple[float, float, str]]:
    """The cues with text, as a subtitle track shows them: (start, end, lines joined by \\n), labelled
    "NAME: " where a cue has a speaker (the lines of the .srt file)."""
    out = []
    for cue in cues:
        start, end, text = cue[:3]
        if text.strip():
            speaker = _speaker(cue)
            out.append((start, end, _wrap(f"{speaker}: {text.strip()}" if speaker else text)))
    return out


def render(cues: Sequence[Cue], fmt: str) -> str:
    """``cues``: (start, end, text), or (start, end, text, speaker). ``fmt``: srt or vtt."""
    sep = "," if fmt == "srt" else "."
    blocks = ["WEBVTT"] if fmt == "vtt" else []
    n = 0
    for cue in cues:
        start, end, text = cue[:3]
        if not text.strip():
            continue
        n += 1
        speaker = _speaker(cue)
        if fmt == "srt":
            lines = shown([cue])[0][2]
        else:  # the voice span names the speaker without taking room on the line
            lines = (f"<v {speaker.replace('&', '&amp;').replace('>', '&gt;')}>" if speaker else "") + _wrap(text)
        head = f"{n}\n" if fmt == "srt" else ""
        blocks.append(f"{head}{_stamp(start, sep)} --> {_stamp(end, sep)}\n{lines}")
    return "\n\n".join(blocks) + "\n"
