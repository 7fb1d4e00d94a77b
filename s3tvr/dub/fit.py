"""Fit each dubbed phrase into its slot on the original timeline.

Dubbers' complaints are that the dub is too fast, stretched or out of sync. So a phrase that is
too long is first sped up only a little (to ``comfortable_tempo``), then takes silence from the
gap that follows it, and only then is sped up further, never beyond ``max_tempo`` and never into
the next phrase. What still does not fit is cut (and reported). Every phrase starts where the
original phrase started, so the output keeps the input's length and sync.

Pure arithmetic on durations: the audio work (Rubber Band stretching) follows the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Slot:
    start: float  # where the original phrase starts, seconds
    end: float  # where it ends


@dataclass(frozen=True)
class Placement:
    start: float  # where the dubbed phrase starts on the output timeline
    end: float  # where it ends (after stretching and any cut)
    tempo: float  # speed-up applied: 1.0 none, 1.25 plays 25 % faster
    borrowed: float  # seconds taken from the following gap
    cut: float  # seconds of stretched audio dropped because it could not fit
    note: str  # "fits", "stretched", "borrowed", "capped and cut"


def plan(slots: Sequence[Slot], durations: Sequence[float], total: float, max_tempo: float = 1.25,
         comfortable_tempo: float = 1.1, min_gap: float = 0.1) -> list[Placement]:
    """Where each dubbed phrase goes. ``durations``: each phrase's dubbed length at tempo 1;
    ``total``: the input's length (the last phrase may borrow up to it); ``min_gap``: silence kept
    before the next phrase when borrowing."""
    if len(slots) != len(durations):
        raise ValueError("one duration per slot")
    if not 1.0 <= comfortable_tempo <= max_tempo:
        raise ValueError("need 1 <= comfortable_tempo <= max_tempo")
    out = []
    for i, (slot, dur) in enumerate(zip(slots, durations, strict=True)):
        if slot.end <= slot.start:
            raise ValueError(f"slot {i} is empty")
        if i and slot.start < slots[i - 1].end:
            raise ValueError(f"slot {i} overlaps slot {i - 1}")
        length = slot.end - slot.start
        next_start = slots[i + 1].start - min_gap if i + 1 < len(slots) else total
        gap = max(0.0, next_start - slot.end)
        out.append(_place(slot.start, length, gap, dur, max_tempo, comfortable_tempo))
    return out


def _place(start: float, length: float, gap: float, dur: float, max_tempo: float, comfortable: float) -> Placement:
    if dur <= length:
        return Placement(start, start + dur, 1.0, 0.0, 0.0, "fits")
    if dur <= length * comfortable:
        return Placement(start, start + length, dur / length, 0.0, 0.0, "stretched")
    borrow = min(gap, dur / comfortable - length)  # take silence before speeding up beyond comfort
    room = length + borrow
    tempo = dur / room
    if tempo <= comfortable + 1e-12:
        return Placement(start, start + room, tempo, borrow, 0.0, "borrowed")
    if tempo <= max_tempo:
        return Placement(start, start + room, tempo, borrow, 0.0, "borrowed and stretched" if borrow > 0 else "stretched")
    return Placement(start, start + room, max_tempo, borrow, dur / max_tempo - room, "capped and cut")

