"""Appendable segments (local disk, memory): one file per segment, appended and fsynced per the policy.

A segment file is created exclusively with its file header (fsynced with its directory under
fsync="always"); if writing the header fails (a full disk) the file is deleted again, so failed
creations do not pile up as header-less files. Each append is the caller's buffers followed by one
fdatasync, so one group commit costs one fsync. A failed append is cut back to the last good length
(and fsynced) so the file stays a valid frame sequence; if even that fails the writer reports it and
the log stops writing.

Crash points: `wal.after_segment_create` (a new segment holds only its header) and
`wal.after_append_before_fsync` (the frames are written but not yet durable). The second sits on the
group-commit path, so a writer looks up whether it is armed once, when its segment is opened, not at
every append.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from wal import crashpoints
from wal.backends.base import Buffer, SegmentWriteError, SegmentWriter, WALBackend
from wal.storage import Storage


def _remove_unfinished(storage: Storage, root: str, path: str) -> None:
    """Best effort: delete a segment file whose header never became durable (ENOSPC, EIO).

    Unlinking needs no free space, so this normally succeeds; if it does not, readers still treat a
    segment file shorter than its header as empty (`wal.reading`), so the file is harmless.
    """
    with contextlib.suppress(OSError):
        storage.delete(path)
        storage.fsync_dir(root)


class AppendableSegmentWriter(SegmentWriter):
    """Appends to one segment file, created (exclusively) with its header on construction."""

    def __init__(self, storage: Storage, root: str, segment: str, header: bytes, fsync: bool) -> None:
        self._storage = storage
        self._segment = segment
        self._fsync = fsync
        storage.make_dirs(root, durable=fsync)
        path = f"{root}/{segment}"
        self._file = storage.open_append(path)
        try:
            storage.append(self._file, [header])
            if fsync:
                storage.fsync(self._file)
                storage.fsync_dir(root)
        except BaseException:
            storage.close_file(self._file)
            _remove_unfinished(storage, root, path)
            raise
        self._closed = False
        self._crash_before_fsync = crashpoints.is_armed(crashpoints.WAL_AFTER_APPEND_BEFORE_FSYNC)
        crashpoints.crash_point(crashpoints.WAL_AFTER_SEGMENT_CREATE)

    def append(self, buffers: Sequence[Buffer], min_time_ms: int, max_time_ms: int) -> tuple[str, int]:
        if self._closed:
            raise SegmentWriteError(f"segment {self._segment!r} is closed", rolled_back=True)
        start = self._file.size
        try:
            self._storage.append(self._file, buffers)
            if self._crash_before_fsync:
                crashpoints.crash_point(crashpoints.WAL_AFTER_APPEND_BEFORE_FSYNC)
            if self._fsync:
                self._storage.fsync(self._file, data_only=True)
        except OSError as exc:
            raise SegmentWriteError(
                f"append to {self._segment!r} failed: {exc}",
                rolled_back=self._roll_back(start),
                good_size=start,
            ) from exc
        return self._segment, start

    def _roll_back(self, size: int) -> bool:
        """Cut off a partial append so the file stays a valid frame sequence; False if that failed."""
        try:
            self._storage.truncate_open(self._file, size)
        except OSError:
            return False
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._storage.close_file(self._file)


class AppendableWALBackend(WALBackend):
    """Segments as files in one directory of an appendable storage."""

    appendable = True

    def __init__(self, storage: Storage, root: str, url: str, fsync: bool) -> None:
        super().__init__(storage, root, url)
        self._fsync = fsync

    def list_files(self, segment: str) -> list[str]:
        path = self._path(segment)
        if not self.storage.exists(path) or self.storage.is_dir(path):
            raise FileNotFoundError(path)
        return [segment]

    def open_segment(self, segment: str, header: bytes) -> SegmentWriter:
        return AppendableSegmentWriter(self.storage, self._root, segment, header, self._fsync)

    def delete_segment(self, segment: str) -> None:
        path = self._path(segment)
        self.storage.delete(path, recursive=self.storage.is_dir(path))
        if self._fsync:
            self.storage.fsync_dir(self._root)

    def delete_file(self, path: str) -> None:
        self.storage.delete(self._path(path))
        if self._fsync:
            self.storage.fsync_dir(self._root)

    def truncate_file(self, path: str, size: int) -> None:
        self.storage.truncate(self._path(path), size)
