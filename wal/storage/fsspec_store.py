"""fsspec-backed storage: the in-process memory filesystem and object stores with conditional puts.

Object stores (`ObjectStoreStorage`, S3 through s3fs): nothing is durable before an object is
closed and nothing can be appended, so there are no appendable files; every write is one whole
object. Create-once is one PUT with ``If-None-Match: *`` (fsspec's ``mode="create"``). A refused
conditional put arrives as FileExistsError (moto), OSError(EINVAL) (SeaweedFS) or a client error
carrying 412 (AWS), and the same types and texts also carry unrelated failures (names hold
millisecond times, so "412" can appear in any message), so a failed put is settled by looking: one
HEAD of the key says whether the name is taken. fsspec's `mv` and append are not trusted.

Memory (`MemoryStorage`, fsspec ``memory://``, for tests): follows the appendable family's rules
(append by rewriting the file, truncation), and create-once and publish run under one process-wide
lock around check-and-write, since the store is one in-process dict. Durability is moot.

Every read and listing invalidates fsspec's listing cache first (s3fs caches listings), so this
process sees what other processes wrote.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from wal.format import BytesSource
from wal.storage.base import AppendFile, Buffer, Hook, RandomAccess, Storage

_MEMORY_LOCK = threading.Lock()


def object_exists(fs: Any, path: str) -> bool:
    """Whether the object `path` exists now: one HEAD on S3, a cache-bypassing `exists` elsewhere.

    fsspec's generic `exists` also lists the prefix (for directories), which a key check does not need.
    """
    call_s3 = getattr(fs, "call_s3", None)
    if call_s3 is None:
        fs.invalidate_cache(path)
        return bool(fs.exists(path))
    bucket, key, _ = fs.split_path(path)
    try:
        call_s3("head_object", Bucket=bucket, Key=key)
    except FileNotFoundError:
        return False
    return True


def put_failed_because_taken(fs: Any, path: str) -> bool:
    """After a failed create-once put of `path`: whether the key exists (False if even that check fails)."""
    try:
        return object_exists(fs, path)
    except Exception:  # the store is unreachable: the failure stays unexplained, not "taken"
        return False


class FsspecStorage(Storage):
    """Reading, listing and deleting through one fsspec filesystem; subclasses choose how to write."""

    def __init__(self, fs: Any, protocol: str) -> None:
        self.fs = fs
        self.protocol = protocol

    def normalize_path(self, path: str) -> str:
        return str(self.fs._strip_protocol(path))

    def _parent(self, path: str) -> str:
        return str(self.fs._parent(path))

    def read(self, path: str) -> bytes:
        self.fs.invalidate_cache(path)
        return bytes(self.fs.cat_file(path))

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        return bytes(self.fs.cat_file(path, start=offset, end=offset + length))

    @contextmanager
    def open_read(self, path: str) -> Iterator[RandomAccess]:
        yield BytesSource(self.read(path))  # objects are bounded by the group-commit size

    def size(self, path: str) -> int:
        return int(self.fs.size(path))

    def exists(self, path: str) -> bool:
        return object_exists(self.fs, path)

    def is_dir(self, path: str) -> bool:
        self.fs.invalidate_cache(path)
        return bool(self.fs.isdir(path))

    def list_names(self, path: str) -> list[str]:
        return [*self.list_sizes(path)]

    def list_sizes(self, path: str) -> dict[str, int]:
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return {}
        base = path.rstrip("/")
        return {
            str(e["name"]).rstrip("/").rsplit("/", 1)[-1]: int(e.get("size") or 0)
            for e in entries
            if str(e["name"]).rstrip("/") != base  # some stores (SeaweedFS) list a directory's marker
        }

    def find(self, path: str) -> list[str]:
        self.fs.invalidate_cache(path)
        try:
            found = self.fs.find(path)
        except FileNotFoundError:
            return []
        return sorted(str(p) for p in found if str(p).rstrip("/") != path.rstrip("/"))

    def delete(self, path: str, *, recursive: bool = False) -> None:
        try:
            if recursive:
                self.fs.rm(path, recursive=True)
            else:
                self.fs.rm_file(path)
        finally:
            self.fs.invalidate_cache(self._parent(path))

    def make_dirs(self, path: str, *, durable: bool = True) -> None:
        """Nothing to do: objects need no directories (and s3fs would create a bucket)."""

    def close_file(self, file: AppendFile) -> None:
        """Nothing to release: fsspec appends rewrite the whole file and keep no handle."""

    def fsync_dir(self, path: str) -> None:
        """Nothing to do: names are durable when their objects are."""


class MemoryStorage(FsspecStorage):
    """fsspec's in-process memory filesystem, with appendable files (for tests)."""

    kind = "memory"
    can_append = True
    conditional_put = True
    durable_on_close = True

    def open_append(self, path: str) -> AppendFile:
        with _MEMORY_LOCK:
            if self.fs.exists(path):
                raise FileExistsError(path)
            self.fs.pipe_file(path, b"")
        return AppendFile(path, 0)

    def append(self, file: AppendFile, buffers: Sequence[Buffer]) -> None:
        content = bytes(self.fs.cat_file(file.path))
        self.fs.pipe_file(file.path, b"".join([content, *buffers]))
        file.size = len(content) + sum(len(b) for b in buffers)

    def fsync(self, file: AppendFile, *, data_only: bool = False) -> None:
        """Nothing to do: memory is as durable as it gets."""

    def truncate_open(self, file: AppendFile, size: int) -> None:
        self.truncate(file.path, size)
        file.size = size

    def truncate(self, path: str, size: int) -> None:
        self.fs.pipe_file(path, bytes(self.fs.cat_file(path))[:size])

    def create_once(self, path: str, data: bytes) -> None:
        self.publish(path, data)

    def publish(
        self, path: str, data: bytes, *, overwrite: bool = False, before_publish: Hook = None
    ) -> None:
        if before_publish is not None:
            before_publish()
        with _MEMORY_LOCK:
            if not overwrite and self.fs.exists(path):
                raise FileExistsError(path)
            self.fs.pipe_file(path, data)

    def make_dirs(self, path: str, *, durable: bool = True) -> None:
        self.fs.makedirs(path, exist_ok=True)


class ObjectStoreStorage(FsspecStorage):
    """An object store whose fsspec backend maps ``mode="create"`` to a conditional put (S3)."""

    kind = "object-store"
    conditional_put = True
    durable_on_close = True

    def create_once(self, path: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(path, data, mode="create")
        except Exception as exc:  # 412 arrives as FileExistsError, OSError(EINVAL), or a client error
            if put_failed_because_taken(self.fs, path):
                raise FileExistsError(f"{path!r} exists (create-once put refused): {exc}") from exc
            raise OSError(f"create-once put of {path!r} failed: {exc}") from exc
        finally:
            self.fs.invalidate_cache(self._parent(path))

    def publish(
        self, path: str, data: bytes, *, overwrite: bool = False, before_publish: Hook = None
    ) -> None:
        """A put is atomic on an object store: one conditional PUT, or a plain one when overwriting."""
        if before_publish is not None:
            before_publish()
        if not overwrite:
            self.create_once(path, data)
            return
        try:
            self.fs.pipe_file(path, data)
        finally:
            self.fs.invalidate_cache(self._parent(path))
