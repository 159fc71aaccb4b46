"""Reading, listing and deleting through an fsspec filesystem: shared by the memory and object backends.

Listings are invalidated before use, because a listing cache (s3fs's default) would hide segments and
objects this log has just written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from wal.backends.base import WALBackend
from wal.format import ByteSource, BytesSource


class FsspecBackend(WALBackend):
    """Common fsspec plumbing; subclasses choose how segments are written."""

    def __init__(self, fs: Any, root: str, url: str) -> None:
        self.url = url
        self._fs = fs
        self._root = root.rstrip("/")

    def _path(self, relative: str) -> str:
        return f"{self._root}/{relative}"

    def _names(self, path: str) -> list[str]:
        self._fs.invalidate_cache(path)
        try:
            entries = self._fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        return [str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries]

    def list_segments(self) -> list[str]:
        return self._names(self._root)

    def read_file(self, path: str) -> bytes:
        """The whole file (objects are bounded by the group-commit size)."""
        return bytes(self._fs.cat_file(self._path(path)))

    @contextmanager
    def open_file(self, path: str) -> Iterator[ByteSource]:
        yield BytesSource(self.read_file(path))

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        return bytes(self._fs.cat_file(self._path(path), start=offset, end=offset + length))

    def file_size(self, path: str) -> int:
        return int(self._fs.size(self._path(path)))

    def delete_segment(self, segment: str) -> None:
        self._fs.rm(self._path(segment), recursive=True)
        self._fs.invalidate_cache(self._root)

    def delete_file(self, path: str) -> None:
        self._fs.rm_file(self._path(path))
        self._fs.invalidate_cache(self._root)
