"""Subtitle cues as SubRip (.srt) and WebVTT (.vtt) write them: the one place for their timing
lines and for making any text safe in them, used by the dub's subtitles (:mod:`s3tvr.dub.subtitles`)
and by live captions (:mod:`s3tvr.live.captions`).

Cue text is any text a translation (or a user's edit) holds, so it is made safe for each format:
one paragraph (a blank line ends a cue in both formats; every kind of line break, U+2028 too,
becomes a space before the text is wrapped), and in WebVTT ``&``, ``<`` and ``>`` escaped as the
format asks (unescaped, a reader takes them for a tag and drops the text, and ``-->`` for a
timing line). SubRip has no escapes: there ``-->`` becomes ``→``."""

from __future__ import annotations

import textwrap

LINE = 42  # characters per subtitle line (the usual broadcast limit)
FORMATS = ("srt", "vtt")
VTT_HEADER = "WEBVTT\n\n"  # the signature line, and the blank line that ends the header


def stamp(seconds: float, sep: str) -> str:
    """A cue time: HH:MM:SS then ``sep`` (SubRip's comma, WebVTT's dot) and milliseconds."""
    ms = int(round(max(0.0, seconds) * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def one_line(text: str) -> str:
    return " ".join(str(text).split())  # split(): every Unicode space and line break


def wrap(text: str) -> str:
    # broken only at spaces: a word (a URL, a hyphenated name) is never split, and the lines joined
    # by spaces give the text back
    return "\n".join(textwrap.wrap(one_line(text), LINE, break_long_words=False, break_on_hyphens=False))


def srt_safe(text: str) -> str:
    return text.replace("-->", "→")  # the one sequence a SubRip reader takes for a timing line


def vtt_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def srt_lines(text: str, speaker: str = "") -> str:
    """A SubRip cue's text lines: labelled "NAME: " where it has a speaker."""
    speaker = one_line(speaker)
    return wrap(srt_safe(f"{speaker}: {text}" if speaker else text))


def cue_block(n: int, start: float, end: float, text: str, fmt: str, speaker: str = "") -> str:
    """Cue number ``n`` (from 1) of a ``fmt`` file (srt or vtt), without the blank line that
    separates it from the next; ``text`` must hold more than spaces."""
    if fmt == "srt":
        return f"{n}\n{stamp(start, ',')} --> {stamp(end, ',')}\n{srt_lines(text, speaker)}"
    speaker = one_line(speaker)  # a voice span names the speaker without taking room on the line
    lines = (f"<v {vtt_escaped(speaker)}>" if speaker else "") + vtt_escaped(wrap(text))
    return f"{stamp(start, '.')} --> {stamp(end, '.')}\n{lines}"
