"""Walking a log's files in write order and deciding which damage is a torn tail and which is corruption.

The rule (see `wal.format`): TORN damage is acceptable only at the end of the last segment of an
appendable backend, because only there can an append have been cut by a crash; everything else is
corruption. Files or segments that vanish while being walked were cleaned concurrently and are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from wal.backends import WALBackend
from wal.errors import CorruptRecordError
from wal.format import ByteSource, Damage, DamageKind, FileSummary, Frame, iter_frames, summarize
from wal.segments import SegmentName, sorted_segments


@dataclass(frozen=True, slots=True)
class LogFile:
    """One file of the log, with its bytes and whether a torn tail is acceptable in it."""

    segment: SegmentName
    path: str
    source: ByteSource
    tail_may_be_torn: bool


def iter_log_files(backend: WALBackend) -> Iterator[LogFile]:
    """Every file of every segment, in write order, each open only while the caller is on it."""
    segments = sorted_segments(backend.list_segments())
    for index, segment in enumerate(segments):
        last_segment = index == len(segments) - 1
        try:
            paths = backend.list_files(str(segment))
        except FileNotFoundError:
            continue
        for path in paths:
            try:
                with backend.open_file(path) as source:
                    yield LogFile(segment, path, source, backend.appendable and last_segment)
            except FileNotFoundError:  # cleaned while we walked: nothing to read there any more
                continue


def is_acceptable_tail(damage: Damage, tail_may_be_torn: bool) -> bool:
    """Whether `damage` is a crash-cut tail that readers may silently stop at."""
    return tail_may_be_torn and damage.kind is DamageKind.TORN


def iter_valid_frames(log_file: LogFile) -> Iterator[Frame]:
    """The file's frames; stops at an acceptable torn tail, raises CorruptRecordError otherwise."""
    for item in iter_frames(log_file.source):
        if isinstance(item, Damage):
            if is_acceptable_tail(item, log_file.tail_may_be_torn):
                return
            raise CorruptRecordError(log_file.path, item.offset, item.reason)
        yield item


def summarize_file(log_file: LogFile) -> FileSummary:
    """Validate a whole file without raising or keeping payloads (recovery, repair, inspection)."""
    return summarize(log_file.source)
