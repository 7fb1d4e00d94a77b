"""JSON files a user edits by hand (a dub's segments file, the speakers file), read as hostile input.

An edit can be clumsy or deliberate: a file of gigabytes, brackets nested a million deep (Python's
json module recurses once per bracket), NaN or 1e999 where a time goes, a list where an object
was, a string of megabytes where a sentence was. So the file is read within a size bound, its
nesting measured before the parser can recurse, NaN and Infinity refused, and every value checked
against a schema of types and finite ranges, unknown keys included (a misspelt key would
otherwise be ignored without a word). Whatever is wrong is an :class:`InputError` of one line
naming the file, the field (``phrases[3].end``) and the fix. The caller's own checks across
fields raise :class:`Invalid` inside :func:`reading`, and read the same.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Protocol

import numpy as np

from s3tvr.bounds import Range
from s3tvr.errors import InputError

MAX_BYTES = 8 * 2**20  # a ten-hour recording's segments file is about 3 MB
MAX_DEPTH = 16  # the files' own nesting is 4 at most
MAX_DIGITS = 40  # an integer longer than this is no time, count or id


class Invalid(ValueError):
    """One thing wrong with an edited file: where (``phrases[3].end``), what, and the fix when it
    is more particular than the file's."""

    def __init__(self, where: str, problem: str, fix: str = ""):
        super().__init__(f"{where}: {problem}" if where else problem)
        self.fix = fix


class Schema(Protocol):
    def check(self, value: Any, where: str) -> Any:
        """``value`` as read (the same, or a default for null), or :class:`Invalid`."""


class _NotFinite:
    """NaN, Infinity or -Infinity in the file: kept as a value so the schema names its field."""

    def __init__(self, literal: str):
        self.literal = literal


def kind(value: Any) -> str:
    """What a JSON value is, in the words of a message (a number as itself)."""
    if isinstance(value, _NotFinite):
        return value.literal
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    names = {str: "text", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def shown(key: str) -> str:
    """A key as a message names it: as it is when short and printable, else quoted and escaped, so
    that the message stays one line."""
    return key if key.isprintable() and 0 < len(key) <= 40 and '"' not in key else json.dumps(key[:40])


@dataclass(frozen=True)
class Number:
    range: Range
    integer: bool = False

    def check(self, value: Any, where: str) -> float | int:
        if isinstance(value, float) and not math.isfinite(value) or isinstance(value, _NotFinite):
            raise Invalid(where, f"must be a finite number, not {kind(value)}")
        number = isinstance(value, int) if self.integer else isinstance(value, (int, float))
        if not number or isinstance(value, bool):
            raise Invalid(where, f"must be {'a whole number' if self.integer else 'a number'}, not {kind(value)}")
        if not self.range.contains(value):
            raise Invalid(where, f"must be {self.range}, not {value}")
        return value


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab and line ends are text


@dataclass(frozen=True)
class Text:
    max_chars: int
    nullable: bool = False  # null reads as ""

    def check(self, value: Any, where: str) -> str:
        if value is None and self.nullable:
            return ""
        if not isinstance(value, str):
            raise Invalid(where, f"must be text (in quotes), not {kind(value)}")
        if len(value) > self.max_chars:
            raise Invalid(where, f"{len(value)} characters, over the {self.max_chars} it may hold")
        control = _CONTROL.search(value)
        if control:  # a TTS, a file name or a subtitle reader cuts or chokes on them
            raise Invalid(where, f"holds the control character U+{ord(control[0]):04X}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # "\ud800": JSON can say it, no file can hold it
            raise Invalid(where, "holds a lone surrogate escape (\\ud800-\\udfff), which is not text") from None
        return value


@dataclass(frozen=True)
class ListOf:
    item: Schema
    min_items: int = 0
    max_items: int = 100_000

    def check(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise Invalid(where, f"must be a list [...], not {kind(value)}")
        if not value and self.min_items:
            raise Invalid(where, "is empty")
        if not self.min_items <= len(value) <= self.max_items:
            wanted = (f"exactly {self.min_items}" if self.min_items == self.max_items
                      else f"{self.min_items} to {self.max_items}")
            raise Invalid(where, f"holds {len(value)} items, not {wanted}")
        return [self.item.check(v, f"{where}[{i}]") for i, v in enumerate(value)]


@dataclass(frozen=True)
class MapOf:
    """An object whose keys are names (speakers) and whose values are all alike."""

    value: Schema
    key: Text = Text(100)
    max_items: int = 1000

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise Invalid(where, f"must be an object {{...}}, not {kind(value)}")
        if len(value) > self.max_items:
            raise Invalid(where, f"holds {len(value)} entries, over the {self.max_items} it may hold")
        for k in value:
            self.key.check(k, f"{where}.{shown(k)}")
        return {k: self.value.check(v, f"{where}.{shown(k)}") for k, v in value.items()}


@dataclass(frozen=True)
class Record:
    """An object with known keys: those in ``required`` must be there, no others may be."""

    fields: Mapping[str, Schema]
    required: frozenset[str] = field(default_factory=frozenset)

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise Invalid(where, f"must be an object {{...}}, not {kind(value)}")
        missing = sorted(self.required - set(value))
        if missing:
            raise Invalid(where, f"has no {missing[0]!r}")
        unknown = [k for k in value if k not in self.fields]
        if unknown:
            raise Invalid(where, f"unknown key {json.dumps(unknown[0][:40])} (the keys are {', '.join(self.fields)})")
        return {k: self.fields[k].check(v, f"{where}.{k}" if where else k) for k, v in value.items()}


def parse(data: bytes, schema: Schema) -> Any:
    """The checked value of a JSON document, or :class:`Invalid`."""
    if len(data) > MAX_BYTES:
        raise Invalid("", f"{len(data) / 2**20:.1f} MB, over the {MAX_BYTES // 2**20} MB such a file may have")
    try:
        text = data.decode("utf-8-sig")  # an editor's byte order mark is no fault
    except UnicodeDecodeError:
        raise Invalid("", "not UTF-8 text") from None
    if depth(data) > MAX_DEPTH:
        raise Invalid("", f"brackets nested more than {MAX_DEPTH} deep")
    try:
        value = json.loads(text, parse_constant=_NotFinite, parse_float=_float, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise Invalid("", f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return schema.check(value, "")


# A JSON string, escapes included: its brackets are text, not nesting.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(set(range(256)) - set(b"[]{}"))


def depth(data: bytes) -> int:
    """How deep the brackets of a JSON document nest, counted without parsing it (at least as deep
    as any parser would go before it finds the document broken)."""
    brackets = np.frombuffer(_STRING.sub(b"", data).translate(None, _NOT_BRACKET), np.uint8)
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    return int(np.cumsum(steps).max(initial=0))


def _float(literal: str) -> Any:
    value = float(literal)
    return value if math.isfinite(value) else _NotFinite(literal)  # 1e999 is Infinity by another name


def _int(literal: str) -> Any:
    # int() of thousands of digits takes quadratic time (Python refuses past 4300 with a ValueError)
    return int(literal) if len(literal) <= MAX_DIGITS else _NotFinite(f"a {len(literal)}-digit number")


def read(path: Path, schema: Schema) -> Any:
    """The checked value of the file at ``path``, or :class:`Invalid` (use inside :func:`reading`)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)  # never more, whatever the file claims to be
    except OSError as exc:
        raise Invalid("", f"cannot be read ({exc.strerror or exc})") from None
    return parse(data, schema)


@contextlib.contextmanager
def reading(name: str | Path, fix: str) -> Iterator[None]:
    """Turns :class:`Invalid` into the one-line error "NAME: WHERE: PROBLEM: FIX"."""
    try:
        yield
    except Invalid as exc:
        raise InputError(f"{name}: {exc}: {exc.fix or fix}") from None


def load(path: Path, schema: Schema, fix: str, name: Optional[str] = None) -> Any:
    """The checked value of the file at ``path``; what is wrong, an InputError naming it and ``fix``."""
    with reading(name or path, fix):
        return read(path, schema)
