"""Numeric options declare their range where they are declared, as ``Annotated[float, Range(0, 1)]``,
so every way in (a YAML preset, ``--set``, a CLI flag, the library) checks the same bounds and
names them in its message.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Optional, Union

from s3tvr.errors import InputError


@dataclass(frozen=True)
class Range:
    lo: float = -math.inf
    hi: float = math.inf
    above: bool = False  # lo itself is not allowed (a length of 0, a rate of 0)

    def __str__(self) -> str:
        return self.said(("> {lo}", "> {lo} and at most {hi}", "at least {lo}", "at most {hi}", "between {lo} and {hi}"))

    def short(self) -> str:
        """As a table or a YAML comment shows it: ``32..10000``, ``> 0``, ``>= 1``."""
        return self.said(("> {lo}", "> {lo}, <= {hi}", ">= {lo}", "<= {hi}", "{lo}..{hi}"))

    def said(self, forms: tuple[str, str, str, str, str]) -> str:
        """The range in one of ``forms``: above (no top), above with a top, no top, no bottom, both."""
        lo, hi = _num(self.lo), _num(self.hi)
        if self.above:
            form = forms[0] if self.hi == math.inf else forms[1]
        elif self.hi == math.inf:
            form = forms[2]
        else:
            form = forms[3] if self.lo == -math.inf else forms[4]
        return form.format(lo=lo, hi=hi)

    def contains(self, value: float) -> bool:
        # "not x > lo" rather than "x <= lo", so that NaN is refused too.
        if not (value > self.lo if self.above else value >= self.lo):
            return False
        return value <= self.hi


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else str(x)


def range_of(cls: type, name: str) -> Optional[Range]:
    """The Range declared for field ``name`` of dataclass ``cls``, if any."""
    return _range(unoptional(typing.get_type_hints(cls, include_extras=True).get(name, Any)))


def check(obj: Any, where: str = "") -> None:
    """Refuse any field of dataclass ``obj`` outside its declared range (in lists and dicts too):
    an InputError naming ``where.field``, the range and the value."""
    hints = typing.get_type_hints(type(obj), include_extras=True)
    for f in dataclasses.fields(obj):
        _check(hints.get(f.name, Any), getattr(obj, f.name), f"{where}.{f.name}" if where else f.name)


def _check(hint: Any, value: Any, name: str) -> None:
    if value is None:
        return
    hint = unoptional(hint)
    bounds = _range(hint)
    if bounds is not None and isinstance(value, (int, float)) and not bounds.contains(value):
        raise InputError(f"{name} must be {bounds}, not {value}")
    inner = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    kind, args = typing.get_origin(inner), typing.get_args(inner)
    if kind is list and args:
        for v in value:
            _check(args[0], v, name)
    elif kind is dict and len(args) == 2:
        for k, v in value.items():
            _check(args[1], v, f"{name}.{k}")


def _range(hint: Any) -> Optional[Range]:
    if typing.get_origin(hint) is typing.Annotated:
        return next((m for m in hint.__metadata__ if isinstance(m, Range)), None)
    return None


def unoptional(hint: Any) -> Any:
    """X for Optional[X] / X | None; other hints unchanged."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint
