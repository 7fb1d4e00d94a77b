"""The segments file: a dub's phrases, their speakers and translations and the voices table, written
for the user to edit and read back by ``--resume``.

It is read as hostile input (:mod:`s3tvr.edited_json`), before any model loads: every phrase a
slot inside the input (times finite, in order, never overlapping, ending after they start and
before the input does) and texts that could be spoken in it. A phrase past the input's end would
be dropped without a word, and a translation of 100 KB for a 2 s slot would keep the TTS busy for
minutes only to be cut, so both are refused, naming the phrase.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from s3tvr import edited_json
from s3tvr.bounds import Range
from s3tvr.dub.phrases import Phrase
from s3tvr.edited_json import Invalid, ListOf, MapOf, Number, Record, Text

FIX = "fix the edit, or delete the file and dub again without --resume"
# What a phrase may say, in characters per second of its slot and the silence after it (where the
# fitting may borrow): fast speech is about 15 a second, the dub plays at most 2x faster; the floor
# leaves room for a short reply in a short slot. Past that nothing could fit: the rest would be cut.
CHARS_PER_S = 50
MIN_CHARS = 80
MAX_TEXT = 60 * CHARS_PER_S  # the longest phrase a dub makes (--max-phrase 60)
END_SLACK_S = 0.01  # the file rounds times to the millisecond
MAX_S = 1e7  # no input is four months long

_TIME = Number(Range(0, MAX_S))
PHRASE = Record({"id": Number(Range(0, 999_999), integer=True), "start": _TIME, "end": _TIME,
                 "speaker": Text(100, nullable=True), "source": Text(MAX_TEXT), "translation": Text(MAX_TEXT),
                 "longer": Text(MAX_TEXT), "overlap": Record({"with": Text(100), "seconds": _TIME}, frozenset({"seconds"}))},
                required=frozenset({"id", "start", "end", "source", "translation"}))
# The runner-up count of speakers, when diarization was unsure: the speaker each phrase would have
# under it, where that differs. Kept for the user; the dub reads it back only to write it again.
ALTERNATIVE = Record({"speakers": Number(Range(1, 99), integer=True), "take_it": Text(4096),
                      "phrases": MapOf(Text(100), max_items=1_000_000)}, required=frozenset({"speakers", "phrases"}))
FILE = Record({"input": Text(4096), "from": Text(32), "to": Text(32), "voices": MapOf(Text(4096, nullable=True)),
               "alternative": ALTERNATIVE, "phrases": ListOf(PHRASE, min_items=1)}, required=frozenset({"phrases"}))


@dataclass
class Edited:
    phrases: list[Phrase]
    voices: dict[str, str]  # speaker -> voice, as given ("" where none was)
    alternative: Optional[dict[str, Any]] = None  # ALTERNATIVE, as found


def to_json(input: Path, src: str, tgt: str, voices: dict[str, str], phrases: Sequence[Phrase],
            alternative: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    return {"input": str(input), "from": src, "to": tgt, "voices": voices,
            **({"alternative": alternative} if alternative else {}), "phrases": [p.to_json() for p in phrases]}


def read(path: Path, duration: Optional[float] = None) -> Edited:
    """The edited file at ``path``, checked (against the input's ``duration`` where given)."""
    with edited_json.reading(path, FIX):
        return _checked(edited_json.read(path, FILE), duration)


def parse(data: bytes, name: str, duration: Optional[float] = None) -> Edited:
    """As :func:`read`, of the file's bytes (``name`` names it in a message)."""
    with edited_json.reading(name, FIX):
        return _checked(edited_json.parse(data, FILE), duration)


def _checked(value: dict[str, Any], duration: Optional[float]) -> Edited:
    # times to the millisecond, as the file is written back: what is checked is what a rerun reads
    phrases = [Phrase(p["id"], round(float(p["start"]), 3), round(float(p["end"]), 3), p["source"], p["translation"],
                      speaker=p.get("speaker", ""), shortened=p.get("longer", ""),
                      overlap_with=p.get("overlap", {}).get("with", ""), overlap_s=p.get("overlap", {}).get("seconds", 0.0))
               for p in value["phrases"]]
    _check_times(phrases, duration)
    _check_texts(phrases, duration)
    _check_ids(phrases)
    return Edited(phrases, value.get("voices", {}), value.get("alternative"))


def _check_times(phrases: list[Phrase], duration: Optional[float]) -> None:
    for i, p in enumerate(phrases):
        if p.end <= p.start:
            raise Invalid(f"phrases[{i}].end", f"{p.end:g} must be after start ({p.start:g})")
        if i and p.start < phrases[i - 1].end:
            raise Invalid(f"phrases[{i}].start", f"{p.start:g} is before the end of phrases[{i - 1}] "
                                                 f"({phrases[i - 1].end:g}): phrases run in time order, never overlapping")
        if duration is not None and p.end > duration + END_SLACK_S:
            raise Invalid(f"phrases[{i}].end", f"phrase {p.id} ends at {p.end:g} s, past the end of the input "
                                               f"({duration:.2f} s long)", "move it inside the input, or delete it")


def _check_texts(phrases: list[Phrase], duration: Optional[float]) -> None:
    """Each phrase's text within what its slot, and the silence after it, could carry."""
    for i, p in enumerate(phrases):
        room = (phrases[i + 1].start if i + 1 < len(phrases) else max(duration or p.end, p.end)) - p.start
        most = max(MIN_CHARS, int(CHARS_PER_S * room))
        for key, text in (("source", p.source), ("translation", p.translation)):
            if len(text) > most:
                raise Invalid(f"phrases[{i}].{key}", f"{len(text)} characters could not be spoken in phrase {p.id}'s "
                                                     f"{room:.2f} s (at most {most}: {CHARS_PER_S} a second)",
                              "shorten it, or give the phrase a longer slot")


def _check_ids(phrases: list[Phrase]) -> None:
    # the report, the log and the speech cache name a phrase by its id
    seen: dict[int, int] = {}
    for i, p in enumerate(phrases):
        if seen.setdefault(p.id, i) != i:
            raise Invalid(f"phrases[{i}].id", f"{p.id} is the id of phrases[{seen[p.id]}] too", "give each phrase its own id")
