"""`DelegatingStorage`: the contract for a storage that wraps another (fault injectors, recorders).

Every operation of `Storage` is forwarded, explicitly, to the wrapped storage, and the capability
attributes are copied from it, so a wrapper is used wherever the wrapped storage would be (the
registry decides by capability, not by type). A subclass overrides the operations it cares about and
calls ``super()`` to go on; because the WAL's appends and fsyncs, publish, the lease's lock and
every read go through these methods, it sees every call, local fast paths included. Handles
(`AppendFile`, `LockHandle`) pass through untouched: they belong to the wrapped storage.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

from wal.storage.base import AppendFile, Buffer, Hook, LockHandle, RandomAccess, Storage


class DelegatingStorage(Storage):
    """Forwards every call to `inner`; subclass it and override what to observe or break."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.protocol = inner.protocol
        self.can_append = inner.can_append
        self.atomic_rename = inner.atomic_rename
        self.conditional_put = inner.conditional_put
        self.durable_on_close = inner.durable_on_close
        self.can_lock = inner.can_lock

    def describe(self) -> str:
        return f"{type(self).__name__}({self.inner.describe()})"

    def normalize_path(self, path: str) -> str:
        return self.inner.normalize_path(path)

    def open_append(self, path: str) -> AppendFile:
        return self.inner.open_append(path)

    def append(self, file: AppendFile, buffers: Sequence[Buffer]) -> None:
        self.inner.append(file, buffers)

    def fsync(self, file: AppendFile, *, data_only: bool = False) -> None:
        self.inner.fsync(file, data_only=data_only)

    def truncate_open(self, file: AppendFile, size: int) -> None:
        self.inner.truncate_open(file, size)

    def close_file(self, file: AppendFile) -> None:
        self.inner.close_file(file)

    def truncate(self, path: str, size: int) -> None:
        self.inner.truncate(path, size)

    def fsync_dir(self, path: str) -> None:
        self.inner.fsync_dir(path)

    def create_once(self, path: str, data: bytes) -> None:
        self.inner.create_once(path, data)

    def publish(
        self, path: str, data: bytes, *, overwrite: bool = False, before_publish: Hook = None
    ) -> None:
        self.inner.publish(path, data, overwrite=overwrite, before_publish=before_publish)

    def read(self, path: str) -> bytes:
        return self.inner.read(path)

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        return self.inner.read_range(path, offset, length)

    def open_read(self, path: str) -> AbstractContextManager[RandomAccess]:
        return self.inner.open_read(path)

    def size(self, path: str) -> int:
        return self.inner.size(path)

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)

    def is_dir(self, path: str) -> bool:
        return self.inner.is_dir(path)

    def list_names(self, path: str) -> list[str]:
        return self.inner.list_names(path)

    def list_sizes(self, path: str) -> dict[str, int]:
        return self.inner.list_sizes(path)

    def find(self, path: str) -> list[str]:
        return self.inner.find(path)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self.inner.delete(path, recursive=recursive)

    def make_dirs(self, path: str, *, durable: bool = True) -> None:
        self.inner.make_dirs(path, durable=durable)

    def rename_dir(self, source: str, target: str) -> None:
        self.inner.rename_dir(source, target)

    def lock(self, path: str, holder: bytes) -> LockHandle:
        return self.inner.lock(path, holder)

    def unlock(self, handle: LockHandle) -> None:
        self.inner.unlock(handle)
