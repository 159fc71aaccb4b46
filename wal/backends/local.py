"""Local-disk backend: one file per segment, appended with os.write, fsynced per the policy.

Why raw `os` calls instead of fsspec: durability needs fsync of the file and of its directory
(a new file's name is only durable once its directory is fsynced), and a failed append must be
rolled back with ftruncate; fsspec exposes neither.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from wal.backends.base import Buffer, SegmentWriteError, SegmentWriter, WALBackend
from wal.durable_fs import fsync_directory, make_directories
from wal.format import ByteSource, encode_file_header

IOV_BUFFERS_MAX = 512  # under every platform's IOV_MAX (1024 on Linux)


def _write_all(fd: int, buffers: Sequence[Buffer]) -> None:
    """Write the buffers in order without joining them (os.writev), finishing any short write."""
    for first in range(0, len(buffers), IOV_BUFFERS_MAX):
        chunk = buffers[first : first + IOV_BUFFERS_MAX]
        written = os.writev(fd, chunk)
        total = sum(len(b) for b in chunk)
        if written < total:  # rare (signals, full disk): write the rest plainly
            rest = memoryview(b"".join(chunk))[written:]
            while rest:
                rest = rest[os.write(fd, rest) :]


class FileSource:
    """A ByteSource over an open file descriptor, read with pread (segments can be gigabytes)."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        parts: list[bytes] = []
        while length > 0:
            part = os.pread(self._fd, length, offset)
            if not part:
                break
            parts.append(part)
            offset += len(part)
            length -= len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)


class LocalSegmentWriter(SegmentWriter):
    """Appends to one segment file, created (O_EXCL) with its header on construction."""

    def __init__(self, root: str, segment: str, fsync: bool) -> None:
        self._segment = segment
        self._fsync = fsync
        make_directories(root, fsync=fsync)
        path = os.path.join(root, segment)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        header = encode_file_header()
        _write_all(self._fd, [header])
        self._size = len(header)
        if fsync:
            os.fsync(self._fd)
            fsync_directory(root)

    def append(self, buffers: Sequence[Buffer], min_time_ms: int, max_time_ms: int) -> tuple[str, int]:
        if self._fd is None:
            raise SegmentWriteError(f"segment {self._segment!r} is closed", rolled_back=True)
        start = self._size
        try:
            _write_all(self._fd, buffers)
            if self._fsync:
                os.fdatasync(self._fd)
        except OSError as exc:
            raise SegmentWriteError(
                f"append to {self._segment!r} failed: {exc}", rolled_back=self._roll_back(start)
            ) from exc
        self._size = start + sum(len(b) for b in buffers)
        return self._segment, start

    def _roll_back(self, size: int) -> bool:
        """Cut off a partial append so the file stays a valid frame sequence; False if that failed."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class LocalWALBackend(WALBackend):
    """Segments as files in a local directory."""

    appendable = True

    def __init__(self, root: str, fsync: bool) -> None:
        self.url = root
        self._root = root
        self._fsync = fsync

    def _path(self, relative: str) -> str:
        return os.path.join(self._root, relative)

    def list_segments(self) -> list[str]:
        try:
            return os.listdir(self._root)
        except FileNotFoundError:
            return []

    def list_files(self, segment: str) -> list[str]:
        if not os.path.isfile(self._path(segment)):
            raise FileNotFoundError(self._path(segment))
        return [segment]

    @contextmanager
    def open_file(self, path: str) -> Iterator[ByteSource]:
        fd = os.open(self._path(path), os.O_RDONLY)
        try:
            yield FileSource(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        fd = os.open(self._path(path), os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def file_size(self, path: str) -> int:
        return os.stat(self._path(path)).st_size

    def open_segment(self, segment: str) -> SegmentWriter:
        return LocalSegmentWriter(self._root, segment, self._fsync)

    def delete_segment(self, segment: str) -> None:
        path = self._path(segment)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        if self._fsync:
            fsync_directory(self._root)

    def delete_file(self, path: str) -> None:
        os.unlink(self._path(path))
        if self._fsync:
            fsync_directory(self._root)

    def truncate_file(self, path: str, size: int) -> None:
        fd = os.open(self._path(path), os.O_WRONLY)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
