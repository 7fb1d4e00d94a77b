"""The dub fitting plan on synthetic durations: exact tempos, borrowing, the cap, no overlaps."""

import pytest

from s3tvr.dub.fit import Slot, plan

SLOTS = [Slot(1.0, 3.0), Slot(4.0, 5.0), Slot(6.0, 8.0)]  # 2 s, 1 s, 2 s phrases; 1 s gaps


def test_a_phrase_that_fits_is_not_touched():
    p = plan(SLOTS, [1.5, 1.0, 2.0], total=10.0)
    assert [(x.start, x.end, x.tempo, x.note) for x in p] == [(1.0, 2.5, 1.0, "fits"), (4.0, 5.0, 1.0, "fits"), (6.0, 8.0, 1.0, "fits")]


def test_a_little_too_long_is_sped_up_within_comfort():
    p = plan(SLOTS, [2.2, 1.0, 2.0], total=10.0)[0]
    assert p.tempo == pytest.approx(1.1) and (p.start, p.end) == (1.0, 3.0) and p.borrowed == 0 and p.note == "stretched"


def test_silence_is_borrowed_before_speeding_up_further():
    # 2.64 s into a 2 s slot: at the comfortable 1.1x it needs 2.4 s, so 0.4 s comes from the gap.
    p = plan(SLOTS, [2.64, 1.0, 2.0], total=10.0)[0]
    assert p.borrowed == pytest.approx(0.4) and p.tempo == pytest.approx(1.1) and p.end == pytest.approx(3.4)
    assert p.note == "borrowed"


def test_past_the_gap_it_stretches_up_to_the_cap():
    # The gap gives 0.9 s (1 s less the 0.1 s kept): 2.9 s of room; 3.48 s plays at exactly 1.2x.
    p = plan(SLOTS, [3.48, 1.0, 2.0], total=10.0)[0]
    assert p.borrowed == pytest.approx(0.9) and p.tempo == pytest.approx(1.2) and p.end == pytest.approx(3.9)
    assert p.cut == 0 and p.note == "borrowed and stretched"


def test_beyond_the_cap_the_rest_is_cut_and_reported():
    p = plan(SLOTS, [4.35, 1.0, 2.0], total=10.0)[0]
    assert p.tempo == 1.25 and p.end == pytest.approx(3.9)
    assert p.cut == pytest.approx(4.35 / 1.25 - 2.9) and p.cut > 0 and p.note == "capped and cut"


def test_no_phrase_overlaps_the_next_and_the_last_may_use_the_tail():
    durs = [10.0, 10.0, 10.0]
    p = plan(SLOTS, durs, total=9.0)
    for a, b in zip(p, p[1:]):
        assert a.end <= b.start - 0.1 + 1e-9
    assert p[-1].end == pytest.approx(9.0)  # borrowed up to the end of the input, not beyond
    assert all(x.end <= 9.0 for x in p)


def test_every_phrase_starts_where_the_original_did():
    p = plan(SLOTS, [0.5, 3.0, 2.5], total=10.0)
    assert [x.start for x in p] == [s.start for s in SLOTS]


def test_bad_plans_are_refused():
    with pytest.raises(ValueError):
        plan([Slot(0, 2), Slot(1, 3)], [1, 1], total=4)
    with pytest.raises(ValueError):
        plan([Slot(0, 1)], [1, 1], total=4)
