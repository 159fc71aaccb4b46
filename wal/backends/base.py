"""How the WAL lays its segments out on a `wal.storage.Storage`: the contract and its writer.

A backend stores *files* (see `wal.format`) grouped in *segments* (see `wal.segments`) under one root.
It knows nothing of frames or records; `wal.log` decides what to write and how to read it. It does
no I/O of its own: every byte goes through the storage the registry chose, so a wrapping storage
sees the WAL's appends and fsyncs too. Two families exist, chosen by the storage's capabilities:

* appendable (`can_append`: local disk, memory): a segment is one file, appended to and truncated
  in place (`wal.backends.appendable`);
* immutable (`conditional_put`: object stores): a segment is a prefix of objects, each written once
  with a create-once put; nothing is ever appended, truncated or renamed (`wal.backends.objects`).

Paths given to and returned by a backend are relative to its root: ``<segment>`` for a segment file,
``<segment>/<object>`` for an object.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from wal.errors import WALError
from wal.format import ByteSource
from wal.storage import Storage

Buffer = bytes | memoryview


class SegmentWriteError(WALError):
    """An append failed. `rolled_back` says whether the file is back to its last good length; when it
    is not, `good_size` is that length (the file must be cut back to it before the log writes again)."""

    def __init__(self, message: str, *, rolled_back: bool, good_size: int | None = None) -> None:
        super().__init__(message)
        self.rolled_back = rolled_back
        self.good_size = good_size


class SegmentWriter(ABC):
    """Writes the files of one segment; a segment is never reopened by a writer once closed."""

    @abstractmethod
    def append(self, buffers: Sequence[Buffer], min_time_ms: int, max_time_ms: int) -> tuple[str, int]:
        """Make the concatenation of `buffers` (encoded frames) durable per the fsync policy.

        Returns:
            The relative path of the file that holds them and the offset of the first frame.

        Raises:
            SegmentWriteError: nothing of this call may be relied on; see `rolled_back`.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the file handle, if any. Idempotent."""


class WALBackend(ABC):
    """Storage for one log's files under `root` on `storage`. Constructing one touches nothing.

    Reading is the same for both families (files and objects are read alike); the subclasses decide
    how segments are listed, written and deleted.
    """

    appendable: bool

    def __init__(self, storage: Storage, root: str, url: str) -> None:
        self.storage = storage
        self.url = url
        self._root = root.rstrip("/") or "/"

    def _path(self, relative: str) -> str:
        return f"{self._root}/{relative}"

    def list_segments(self) -> list[str]:
        """Base names directly under the root (any order); empty if the root does not exist."""
        return self.storage.list_names(self._root)

    @abstractmethod
    def list_files(self, segment: str) -> list[str]:
        """Relative paths of the segment's files in write order. Raises FileNotFoundError if gone."""

    @contextmanager
    def open_file(self, path: str) -> Iterator[ByteSource]:
        """Random access to a file's bytes as of now, released on exit. Raises FileNotFoundError."""
        with self.storage.open_read(self._path(path)) as source:
            yield source

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset` (fewer at end of file). Raises FileNotFoundError."""
        return self.storage.read_range(self._path(path), offset, length)

    def file_size(self, path: str) -> int:
        """The file's current size in bytes. Raises FileNotFoundError."""
        return self.storage.size(self._path(path))

    @abstractmethod
    def open_segment(self, segment: str, header: bytes) -> SegmentWriter:
        """A writer for a new segment whose files start with `header` (`wal.format.encode_file_header`).

        It may create the segment now or at its first append. A creation that fails leaves nothing
        behind that a later open could trip on.
        """

    @abstractmethod
    def delete_segment(self, segment: str) -> None:
        """Delete a whole segment (file or prefix). Raises on failure."""

    @abstractmethod
    def delete_file(self, path: str) -> None:
        """Delete one file or object."""

    def truncate_file(self, path: str, size: int) -> None:
        """Cut a file to `size` bytes, durably (appendable backends only)."""
        raise NotImplementedError(f"{type(self).__name__} cannot truncate {path!r}")

    def describe(self) -> str:
        """Kind and root, for messages and the CLI."""
        return f"{type(self).__name__}({self.url})"
