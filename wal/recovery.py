"""Making a log writable again after a crash, and repair mode.

Writer recovery (always, before the first write after opening): the last segment of an appendable
backend may end in a torn tail; it is truncated (or, if even its file header is torn, the file is
deleted) and the writer then starts a new segment, so it never appends after bytes it did not write
(Spark's append-after-partial-write hazard). Any other damage there raises CorruptRecordError.

Repair mode (explicit): every file is scanned; at each damage the rest of that segment is dropped:
an appendable segment file is truncated at the damage, and an object store's damaged object and the
later objects of its segment are deleted. Later segments are kept. Every drop is reported.
"""

from __future__ import annotations

from wal.backends import WALBackend
from wal.errors import CorruptRecordError
from wal.format import DamageKind
from wal.reading import LogFile, iter_log_files, summarize_file
from wal.segments import SegmentName, sorted_segments
from wal.stats import Drop


def _cut(backend: WALBackend, log_file: LogFile, offset: int, reason: str) -> Drop:
    """Drop the file's bytes from `offset` on: truncate, or delete when nothing valid would remain."""
    if backend.appendable and offset > 0:  # damage past the file header: keep what precedes it
        backend.truncate_file(log_file.path, offset)
    else:
        backend.delete_file(log_file.path)
        offset = 0
    return Drop(log_file.path, offset, log_file.source.size - offset, reason)


def recover_for_writing(backend: WALBackend) -> tuple[SegmentName | None, list[Drop]]:
    """Truncate a torn tail of the last segment; return the last segment name and what was dropped.

    Raises:
        CorruptRecordError: the last segment is damaged in a way a crash cannot explain.
    """
    segments = sorted_segments(backend.list_segments())
    if not segments or not backend.appendable:
        return (segments[-1] if segments else None), []
    last = segments[-1]
    try:
        with backend.open_file(str(last)) as source:
            log_file = LogFile(last, str(last), source, True)
            damage = summarize_file(log_file).damage
            if damage is None:
                return last, []
            if damage.kind is not DamageKind.TORN:
                raise CorruptRecordError(log_file.path, damage.offset, damage.reason)
            return last, [_cut(backend, log_file, damage.offset, f"torn tail: {damage.reason}")]
    except FileNotFoundError:
        return last, []


def repair(backend: WALBackend) -> list[Drop]:
    """Cut every segment at its first damage (see module doc) and report what was dropped."""
    drops: list[Drop] = []
    damaged_segment: SegmentName | None = None
    for log_file in iter_log_files(backend):
        if log_file.segment == damaged_segment:
            drops.append(_cut(backend, log_file, 0, "after corruption earlier in the segment"))
            continue
        damage = summarize_file(log_file).damage
        if damage is None:
            continue
        damaged_segment = log_file.segment
        drops.append(_cut(backend, log_file, damage.offset, f"{damage.kind.value}: {damage.reason}"))
    return drops
