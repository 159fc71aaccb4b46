"""Walking a log's files in write order and deciding which damage is a torn tail and which is corruption.

The rule (see `wal.format`): TORN damage is acceptable only at the end of the last segment of an
appendable backend, because only there can an append have been cut by a crash; everything else is
corruption. One exception: an appendable segment file shorter than its header (`header_cut`) is an
empty segment wherever it is, because a segment's header is durable before its first record is
written; failed creations (a full disk) leave such files. UNAUTHENTICATED damage (a keyed reader
meeting a file or record not written with its key) is never skipped: it raises
`RecordAuthenticationError`. Files or segments that vanish while being walked were cleaned
concurrently and are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from wal.auth import RecordAuthenticator
from wal.backends import WALBackend
from wal.errors import CorruptRecordError, RecordAuthenticationError
from wal.format import ByteSource, Damage, DamageKind, FileSummary, Frame, iter_frames, summarize
from wal.segments import SegmentName, sorted_segments


@dataclass(frozen=True, slots=True)
class LogFile:
    """One file of the log, with its bytes and whether a torn tail is acceptable in it."""

    segment: SegmentName
    path: str
    source: ByteSource
    tail_may_be_torn: bool
    appendable: bool = True


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
                    tail = backend.appendable and last_segment
                    yield LogFile(segment, path, source, tail, backend.appendable)
            except FileNotFoundError:  # cleaned while we walked: nothing to read there any more
                continue


def is_acceptable_tail(damage: Damage, tail_may_be_torn: bool, appendable: bool = False) -> bool:
    """Whether `damage` is a crash-cut tail (or an unfinished segment file) readers may stop at."""
    if damage.kind is not DamageKind.TORN:
        return False
    return tail_may_be_torn or (appendable and damage.header_cut)


def iter_valid_frames(log_file: LogFile, auth: RecordAuthenticator | None = None) -> Iterator[Frame]:
    """The file's frames (MAC-verified with `auth`); stops at an acceptable torn tail, raises otherwise.

    Raises:
        RecordAuthenticationError: with `auth`, a file or frame not authenticated with its key.
        CorruptRecordError: any other damage that is not an acceptable torn tail.
    """
    for item in iter_frames(log_file.source, auth):
        if isinstance(item, Damage):
            if is_acceptable_tail(item, log_file.tail_may_be_torn, log_file.appendable):
                return
            if item.kind is DamageKind.UNAUTHENTICATED:
                raise RecordAuthenticationError(log_file.path, item.offset, item.reason)
            raise CorruptRecordError(log_file.path, item.offset, item.reason)
        yield item


def summarize_file(log_file: LogFile, auth: RecordAuthenticator | None = None) -> FileSummary:
    """Validate a whole file without raising or keeping payloads (recovery, repair, inspection)."""
    return summarize(log_file.source, auth)
