"""In-memory backend (fsspec ``memory://``), for tests: segment files appended by rewriting them.

It follows the appendable family's rules (torn tails, truncation) so the conformance suite exercises
them without a disk; durability is moot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wal.backends.base import Buffer, SegmentWriter
from wal.backends.fsspec_base import FsspecBackend
from wal.format import encode_file_header


class MemorySegmentWriter(SegmentWriter):
    """Appends to one memory file by writing its new whole content."""

    def __init__(self, fs: Any, path: str, segment: str) -> None:
        self._fs = fs
        self._path = path
        self._segment = segment
        self._fs.pipe_file(path, encode_file_header(), mode="create")

    def append(self, buffers: Sequence[Buffer], min_time_ms: int, max_time_ms: int) -> tuple[str, int]:
        content = bytes(self._fs.cat_file(self._path))
        self._fs.pipe_file(self._path, b"".join([content, *buffers]))
        return self._segment, len(content)

    def close(self) -> None:
        pass


class MemoryBackend(FsspecBackend):
    """Segments as files in fsspec's process-wide memory filesystem."""

    appendable = True

    def list_files(self, segment: str) -> list[str]:
        if not self._fs.isfile(self._path(segment)):
            raise FileNotFoundError(self._path(segment))
        return [segment]

    def open_segment(self, segment: str) -> SegmentWriter:
        return MemorySegmentWriter(self._fs, self._path(segment), segment)

    def truncate_file(self, path: str, size: int) -> None:
        content = self.read_file(path)
        self._fs.pipe_file(self._path(path), content[:size])
