"""Subtitles of the dub's phrases: SubRip (.srt) and WebVTT (.vtt), source and translation, and
the same cues as a video's subtitle tracks show them.

A cue is (start, end, text), or (start, end, text, speaker): a cue with a speaker is labelled
"NAME: text" (in WebVTT, a voice span ``<v NAME>``, which players show or style as they choose).

Cue text is any text a translation (or a user's edit) holds, so it is made safe for each format:
one paragraph (a blank line ends a cue in both formats; every kind of line break, U+2028 too,
becomes a space before the text is wrapped), and in WebVTT ``&``, ``<`` and ``>`` escaped as the
format asks (unescaped, a reader takes them for a tag and drops the text, and ``-->`` for a
timing line). SubRip has no escapes: there ``-->`` becomes ``→``."""

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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())  # split(): every Unicode space and line break


def _speaker(cue: Cue) -> str:
    return _one_line(cue[3]) if len(cue) > 3 else ""


def _wrap(text: str) -> str:
    # broken only at spaces: a word (a URL, a hyphenated name) is never split, and the lines joined
    # by spaces give the text back
    return "\n".join(textwrap.wrap(_one_line(text), LINE, break_long_words=False, break_on_hyphens=False))


def _srt_safe(text: str) -> str:
    return text.replace("-->", "→")  # the one sequence a SubRip reader takes for a timing line


def vtt_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def shown(cues: Sequence[Cue]) -> list[tuple[float, float, str]]:
    """The cues with text, as a subtitle track shows them: (start, end, lines joined by \\n), labelled
    "NAME: " where a cue has a speaker (the lines of the .srt file)."""
    out = []
    for cue in cues:
        start, end, text = cue[:3]
        if text.strip():
            speaker = _speaker(cue)
            out.append((start, end, _wrap(_srt_safe(f"{speaker}: {text}" if speaker else text))))
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
            lines = (f"<v {vtt_escaped(speaker)}>" if speaker else "") + vtt_escaped(_wrap(text))
        head = f"{n}\n" if fmt == "srt" else ""
        blocks.append(f"{head}{_stamp(start, sep)} --> {_stamp(end, sep)}\n{lines}")
    return "\n\n".join(blocks) + "\n"
