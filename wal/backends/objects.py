"""Immutable-object segments (object stores): one create-once object per append.

Nothing is durable before an object is closed and nothing can be appended, so each append (one record,
or one group commit of many) is one object ``<segment>/<n>-<min_ms>-<max_ms>`` holding a file header
and the frames. Objects are written with the storage's create-once put (``If-None-Match: *`` on S3),
so two writers on one log collide loudly instead of overwriting each other. A put is atomic, so an
object is never torn; a damaged one is corruption.
"""

from __future__ import annotations

from collections.abc import Sequence

from wal.backends.base import Buffer, SegmentWriteError, SegmentWriter, WALBackend
from wal.segments import ObjectName, parse_object
from wal.storage import Storage


class ObjectSegmentWriter(SegmentWriter):
    """Puts one object per append; creates nothing until the first append."""

    def __init__(self, storage: Storage, root: str, segment: str, header: bytes) -> None:
        self._storage = storage
        self._root = root
        self._segment = segment
        self._next = 0
        self._header = header

    def append(self, buffers: Sequence[Buffer], min_time_ms: int, max_time_ms: int) -> tuple[str, int]:
        name = f"{self._segment}/{ObjectName(self._next, min_time_ms, max_time_ms)}"
        # Advance first: after an ambiguous failure (timeout) the object may exist, never reuse its name.
        self._next += 1
        try:
            self._storage.create_once(f"{self._root}/{name}", b"".join([self._header, *buffers]))
        except FileExistsError as exc:
            reason = f"the key exists (another writer on this log?): {exc}"
            raise SegmentWriteError(f"put of {name!r} failed: {reason}", rolled_back=True) from exc
        except Exception as exc:
            raise SegmentWriteError(f"put of {name!r} failed: {exc}", rolled_back=True) from exc
        return name, len(self._header)

    def close(self) -> None:
        pass


class ObjectWALBackend(WALBackend):
    """Segments as prefixes of immutable objects."""

    appendable = False

    def list_files(self, segment: str) -> list[str]:
        names = self.storage.list_names(self._path(segment))
        objects = sorted(parsed for parsed in map(parse_object, names) if parsed is not None)
        return [f"{segment}/{obj}" for obj in objects]

    def open_segment(self, segment: str, header: bytes) -> SegmentWriter:
        return ObjectSegmentWriter(self.storage, self._root, segment, header)

    def delete_segment(self, segment: str) -> None:
        self.storage.delete(self._path(segment), recursive=True)

    def delete_file(self, path: str) -> None:
        self.storage.delete(self._path(path))
