"""The storage contract: the one small abstract class every byte of dstream goes through.

Why one contract: the WAL, atomic publish, the driver lease, checkpoints and sinks all need the same
few durable operations, and a wrapping implementation (a fault injector, a recorder) must see every
one of them, local fast paths included. So the operations live here, as methods of one object:

* appendable files: `open_append` (exclusive create), `append`, `fsync`, `truncate_open`,
  `close_file`, and `truncate` / `fsync_dir` by path;
* whole objects: `create_once` (write only if absent), `publish` (atomic, create-once unless
  overwriting), `read`, `read_range`, `open_read`, `size`;
* names: `exists`, `is_dir`, `list_names`, `list_sizes`, `find`, `delete`, `make_dirs`, and `rename_dir`
  (atomic, create-once directory publish where `atomic_rename` holds);
* an exclusive lock released by the kernel when the holder dies: `lock`, `unlock`.

Handles (`AppendFile`, `LockHandle`) are opaque tokens that go back to the storage that made them:
a wrapper passes them through and still sees every append, fsync and unlock.

What a storage can do is stated by its capability attributes, never guessed by callers from a
protocol name: `can_append` (a file can be appended to and truncated in place), `atomic_rename`
(publish is temp file + rename), `conditional_put` (create-once is a conditional put, e.g.
``If-None-Match: *``), `durable_on_close` (a write is durable when it returns, no fsync needed) and
`can_lock` (`lock` works). `kind` names the family for messages and for checkpoint's publish
technique. Paths are the storage's own (no protocol): `registry.resolve_storage` makes them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Literal, Protocol

Buffer = bytes | memoryview
Kind = Literal["local", "memory", "object-store"]
Hook = Callable[[], None] | None


class RandomAccess(Protocol):
    """Random read access to one file's bytes as of when it was opened."""

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, length: int) -> bytes | memoryview: ...


class AppendFile:
    """An open appendable file: an opaque token for the storage that opened it.

    Attributes:
        path: the storage path of the file.
        size: bytes in the file as far as this handle knows (grows with each append).
    """

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size


class LockHandle:
    """A held exclusive lock: an opaque token for the storage that granted it."""

    def __init__(self, path: str) -> None:
        self.path = path


class Storage(ABC):
    """Durable byte storage on one filesystem or object store. Constructing one touches nothing."""

    kind: Kind
    protocol: str
    can_append: bool = False
    atomic_rename: bool = False
    conditional_put: bool = False
    durable_on_close: bool = False
    can_lock: bool = False

    def describe(self) -> str:
        """Kind and protocol, for messages."""
        return f"{type(self).__name__}({self.protocol})"

    @abstractmethod
    def normalize_path(self, path: str) -> str:
        """The storage path for `path`, a URL with its ``protocol://`` already removed."""

    # -- appendable files ----------------------------------------------------------------------

    def open_append(self, path: str) -> AppendFile:
        """Create `path` (which must not exist) and open it for appending.

        Raises:
            FileExistsError: the name is taken.
            NotImplementedError: the storage cannot append (`can_append` is false).
        """
        raise NotImplementedError(f"{self.describe()} cannot append to {path!r} (can_append is false)")

    def append(self, file: AppendFile, buffers: Sequence[Buffer]) -> None:
        """Write the buffers, in order, at the end of `file` (not yet durable: see `fsync`).

        Raises:
            OSError: the write failed; part of it may be in the file (cut it with `truncate_open`).
        """
        raise NotImplementedError(f"{self.describe()} cannot append to {file.path!r}")

    def fsync(self, file: AppendFile, *, data_only: bool = False) -> None:
        """Make what was appended to `file` durable (`data_only`: fdatasync, skip metadata)."""
        raise NotImplementedError(f"{self.describe()} cannot fsync {file.path!r}")

    def truncate_open(self, file: AppendFile, size: int) -> None:
        """Cut the open `file` to `size` bytes, durably."""
        raise NotImplementedError(f"{self.describe()} cannot truncate {file.path!r}")

    @abstractmethod
    def close_file(self, file: AppendFile) -> None:
        """Release the handle. Idempotent."""

    def truncate(self, path: str, size: int) -> None:
        """Cut the file at `path` to `size` bytes, durably. Raises FileNotFoundError."""
        raise NotImplementedError(f"{self.describe()} cannot truncate {path!r} (can_append is false)")

    @abstractmethod
    def fsync_dir(self, path: str) -> None:
        """Make the directory's created and removed names durable (a no-op where names are durable)."""

    # -- whole objects -------------------------------------------------------------------------

    @abstractmethod
    def create_once(self, path: str, data: bytes) -> None:
        """Write the whole object `path` only if it is absent, durably.

        Raises:
            FileExistsError: the name is taken (by another writer, or by this write despite an error).
            OSError: the write failed.
        """

    @abstractmethod
    def publish(
        self, path: str, data: bytes, *, overwrite: bool = False, before_publish: Hook = None
    ) -> None:
        """Make `data` visible at `path` atomically and durably: readers see all of it or nothing.

        Args:
            path: the object's path; missing parent directories are created.
            data: the complete bytes.
            overwrite: replace an existing object (still atomic) instead of refusing.
            before_publish: called once the bytes are durable but not yet visible under `path`.

        Raises:
            FileExistsError: not `overwrite`, and the name is taken.
            OSError: the write failed and nothing was published.
        """

    @abstractmethod
    def read(self, path: str) -> bytes:
        """The whole object, bypassing any cache. Raises FileNotFoundError."""

    @abstractmethod
    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset` (fewer at the end). Raises FileNotFoundError."""

    @abstractmethod
    def open_read(self, path: str) -> AbstractContextManager[RandomAccess]:
        """Random access to the file's bytes as of now, released on exit. Raises FileNotFoundError."""

    @abstractmethod
    def size(self, path: str) -> int:
        """The object's size in bytes. Raises FileNotFoundError."""

    # -- names ---------------------------------------------------------------------------------

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Whether `path` exists now (no listing cache)."""

    @abstractmethod
    def is_dir(self, path: str) -> bool:
        """Whether `path` is a directory (or a prefix with objects under it)."""

    @abstractmethod
    def list_names(self, path: str) -> list[str]:
        """Base names directly under `path`, in no order; empty if it does not exist."""

    @abstractmethod
    def list_sizes(self, path: str) -> dict[str, int]:
        """{base name: size in bytes} directly under `path` (directories count 0); empty if missing."""

    @abstractmethod
    def find(self, path: str) -> list[str]:
        """Paths of every file below `path`, recursively, sorted; empty if it does not exist."""

    @abstractmethod
    def delete(self, path: str, *, recursive: bool = False) -> None:
        """Remove a file (or, `recursive`, a directory and everything in it).

        Raises:
            FileNotFoundError: nothing is there, where the store can tell (object stores delete
                idempotently, as S3 does).
        """

    @abstractmethod
    def make_dirs(self, path: str, *, durable: bool = True) -> None:
        """Create `path` and missing parents; `durable`: each new name survives a power cut."""

    def rename_dir(self, source: str, target: str) -> None:
        """Move the complete directory `source` to `target` atomically and durably, create-once.

        Raises:
            FileExistsError: `target` exists and is not empty.
            NotImplementedError: the storage has no atomic rename (`atomic_rename` is false).
        """
        raise NotImplementedError(f"{self.describe()} has no atomic rename: {source!r} -> {target!r}")

    # -- exclusive lock ------------------------------------------------------------------------

    def lock(self, path: str, holder: bytes) -> LockHandle:
        """Take the exclusive lock `path` without waiting, and record `holder` in it.

        The lock is released by `unlock` or when the holding process dies.

        Raises:
            LockHeldError: another holder has it (the error names that holder).
            NotImplementedError: the storage has no locks (`can_lock` is false).
        """
        raise NotImplementedError(f"{self.describe()} has no locks (can_lock is false): {path!r}")

    def unlock(self, handle: LockHandle) -> None:
        """Release a lock taken by `lock`. Idempotent."""
        raise NotImplementedError(f"{self.describe()} has no locks: {handle.path!r}")
