"""Segment and object naming, and the pure decisions made from names: order, rolling, cleaning.

Names (version 1 of the layout):

* Segment: ``log-<seq>-<start_ms>-<end_ms>``; `seq` is a 10-digit zero-padded counter, so name order
  is write order even when record times go backwards (clock skew). `start_ms` is the first record's
  time, informational. `end_ms` bounds every record time in the segment (``time_ms <= end_ms``), which
  is what lets `clean` drop a whole segment by its name alone. On local disk and in memory a segment is
  one file; on an object store it is a prefix ("directory") of immutable objects.
* Object inside an object-store segment: ``<n>-<min_ms>-<max_ms>``, `n` a 10-digit counter (listing
  order = write order), `min_ms`/`max_ms` the range of the record times inside.

Names that do not match are ignored, so other files may share the directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

SEQ_DIGITS = 10
_SEGMENT_RE = re.compile(r"^log-(\d{10})-(\d+)-(\d+)$")
_OBJECT_RE = re.compile(r"^(\d{10})-(\d+)-(\d+)$")


@dataclass(frozen=True, slots=True, order=True)
class SegmentName:
    """A parsed segment name; ordering is by `seq`, i.e. write order."""

    seq: int
    start_ms: int
    end_ms: int

    def __str__(self) -> str:
        return f"log-{self.seq:0{SEQ_DIGITS}d}-{self.start_ms}-{self.end_ms}"


@dataclass(frozen=True, slots=True, order=True)
class ObjectName:
    """A parsed object name inside an object-store segment; ordering is write order."""

    n: int
    min_ms: int
    max_ms: int

    def __str__(self) -> str:
        return f"{self.n:0{SEQ_DIGITS}d}-{self.min_ms}-{self.max_ms}"


def parse_segment(name: str) -> SegmentName | None:
    """Parse a segment's base name; None if it is not one."""
    match = _SEGMENT_RE.match(name)
    if match is None:
        return None
    return SegmentName(*(int(group) for group in match.groups()))


def parse_object(name: str) -> ObjectName | None:
    """Parse an object's base name; None if it is not one."""
    match = _OBJECT_RE.match(name)
    if match is None:
        return None
    return ObjectName(*(int(group) for group in match.groups()))


def sorted_segments(names: Iterable[str]) -> list[SegmentName]:
    """The segment names among `names`, in write order."""
    return sorted(parsed for parsed in map(parse_segment, names) if parsed is not None)


def must_roll(current: SegmentName | None, max_time_ms: int) -> bool:
    """Whether a write whose newest record is at `max_time_ms` needs a new segment.

    Like Spark: strictly later than the open segment's end (a record at exactly end_ms still fits).
    """
    return current is None or max_time_ms > current.end_ms


def next_segment(
    last: SegmentName | None, min_time_ms: int, max_time_ms: int, rolling_interval_ms: int
) -> SegmentName:
    """The segment to open for a write of records timed min..max, after `last`.

    The end covers the write's newest record even if the write spans more than one interval, so that
    every record in a segment is at most its end (the rule `clean` relies on).
    """
    seq = 0 if last is None else last.seq + 1
    return SegmentName(seq, min_time_ms, max(min_time_ms + rolling_interval_ms, max_time_ms))


def cleanable(segments: Iterable[SegmentName], before_ms: int, open_seq: int | None) -> list[SegmentName]:
    """Segments whose every record is older than `before_ms` (end_ms < before_ms), except the open one."""
    return [s for s in segments if s.end_ms < before_ms and s.seq != open_seq]
