"""A read-only report of a log's segments, records, time ranges and damage (for `dstream wal`).

Reading only: it never truncates or creates anything, so it is safe on a log a writer is using.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wal.backends import WALBackend, make_backend
from wal.format import Damage
from wal.reading import LogFile, is_acceptable_tail, iter_log_files, summarize_file
from wal.segments import SegmentName


@dataclass(frozen=True, slots=True)
class FileReport:
    """One segment file or object: its valid records and the damage that ends it, if any."""

    path: str
    size: int
    records: int
    payload_bytes: int
    min_time_ms: int | None
    max_time_ms: int | None
    damage: Damage | None
    torn_tail: bool

    @property
    def corrupt(self) -> bool:
        """Damage that is not an acceptable torn tail."""
        return self.damage is not None and not self.torn_tail


@dataclass(frozen=True, slots=True)
class SegmentReport:
    """A segment and its files, in write order."""

    name: SegmentName
    files: tuple[FileReport, ...]

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)


@dataclass(frozen=True, slots=True)
class LogReport:
    """Every segment of one log."""

    url: str
    backend: str
    segments: tuple[SegmentReport, ...]

    @property
    def files(self) -> list[FileReport]:
        return [f for s in self.segments for f in s.files]

    @property
    def corrupt(self) -> list[FileReport]:
        return [f for f in self.files if f.corrupt]


def _report_file(log_file: LogFile) -> FileReport:
    found = summarize_file(log_file)
    torn = found.damage is not None and is_acceptable_tail(
        found.damage, log_file.tail_may_be_torn, log_file.appendable
    )
    return FileReport(log_file.path, found.size, found.records, found.payload_bytes, found.min_time_ms,
                      found.max_time_ms, found.damage, torn)  # fmt: skip


def inspect_backend(backend: WALBackend) -> LogReport:
    """Scan every file of the log behind `backend`."""
    by_segment: dict[SegmentName, list[FileReport]] = {}
    for log_file in iter_log_files(backend):
        by_segment.setdefault(log_file.segment, []).append(_report_file(log_file))
    segments = tuple(SegmentReport(name, tuple(files)) for name, files in by_segment.items())
    return LogReport(backend.url, f"{type(backend).__name__} on {backend.storage.describe()}", segments)


def inspect_log(url: str, storage_options: Mapping[str, Any] | None = None) -> LogReport:
    """Scan the log at `url` without changing it."""
    return inspect_backend(make_backend(url, storage_options, fsync=False))
