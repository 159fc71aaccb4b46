"""Segment naming and the pure rolling/cleaning decisions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from wal.segments import (
    ObjectName,
    SegmentName,
    cleanable,
    must_roll,
    next_segment,
    parse_object,
    parse_segment,
    sorted_segments,
)


def test_names_show_the_time_range_and_sort_in_write_order() -> None:
    assert str(SegmentName(3, 1000, 61000)) == "log-0000000003-1000-61000"
    assert str(ObjectName(12, 5, 9)) == "0000000012-5-9"
    names = ["log-0000000010-5-6", "log-0000000002-900-901", "notes.txt", "log-x-1-2"]
    assert [s.seq for s in sorted_segments(names)] == [2, 10]
    assert parse_segment("log-0000000001-1-2/") is None and parse_object("1-2-3") is None


@given(seq=st.integers(0, 10**10 - 1), start=st.integers(0, 2**62), span=st.integers(0, 2**40))
def test_segment_names_round_trip(seq: int, start: int, span: int) -> None:
    name = SegmentName(seq, start, start + span)
    assert parse_segment(str(name)) == name


def test_roll_only_when_a_record_is_strictly_after_the_end() -> None:
    current = SegmentName(0, 1000, 2000)
    assert not must_roll(current, 2000)
    assert must_roll(current, 2001)
    assert must_roll(None, 0)


def test_next_segment_covers_the_whole_write() -> None:
    assert next_segment(None, 100, 150, 1000) == SegmentName(0, 100, 1100)
    assert next_segment(SegmentName(4, 0, 1), 100, 5000, 1000) == SegmentName(5, 100, 5000)


@settings(max_examples=200, deadline=None)
@given(
    ends=st.lists(st.integers(0, 10_000), min_size=1, max_size=12),
    before=st.integers(0, 10_001),
    open_index=st.none() | st.integers(0, 11),
)
def test_cleanable_is_exactly_the_segments_ending_before_except_the_open_one(
    ends: list[int], before: int, open_index: int | None
) -> None:
    segments = [SegmentName(i, 0, end) for i, end in enumerate(ends)]
    chosen = cleanable(segments, before, open_index)
    for segment in segments:
        expected = segment.end_ms < before and segment.seq != open_index
        assert (segment in chosen) == expected
