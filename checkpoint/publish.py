"""Atomic, create-once publish of a whole object, chosen by the filesystem's capability.

A published name is either absent or holds the complete bytes of one `publish` call: readers never see
a torn object. By default a name is written once (`overwrite=False`): a second publish to the same name
raises `AlreadyPublishedError`, which is how a zombie driver is fenced off names a newer driver took.

Techniques (fsspec's `mv` and append are not trusted for any of this):

- local disk: write `.<name>.tmp-<uuid>` in the target directory, fsync it, then `link()` it to the final
  name (fails atomically with EEXIST when the name is taken; `replace()` when overwriting), unlink the
  temp name, and fsync the directory so the new entry survives a power cut. Directories created on the
  way are fsynced into their parents. A crash leaves at worst a dot-prefixed temp file, which every
  reader ignores.
- fsspec memory: a process-wide lock around check-and-write (the store is one in-process dict).
- object stores (S3): one PUT with `If-None-Match: *`. Any failure of that put is settled by looking:
  if the key now exists, the name is taken (moto reports FileExistsError, SeaweedFS OSError(EINVAL),
  AWS a 412); if it does not, the put failed and `PublishError` is raised.

`AlreadyPublishedError.identical` says whether the existing bytes equal the bytes being published. A
caller whose bytes carry a unique nonce can treat `identical` as "my own earlier attempt won" (an S3
client retry after a lost response sees its own object as a 412).
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from fsspec import AbstractFileSystem

from checkpoint.errors import AlreadyPublishedError, PublishError
from checkpoint.location import capability_of, resolve
from wal.create_once import object_exists, put_failed_because_taken
from wal.durable_fs import fsync_directory, make_directories

Hook = Callable[[], None] | None


class Publisher(ABC):
    """Publishes whole objects atomically on one filesystem."""

    def __init__(self, fs: AbstractFileSystem) -> None:
        self.fs = fs

    @abstractmethod
    def _put(self, path: str, data: bytes, *, overwrite: bool, hook: Hook) -> None:
        """Write `data` atomically; raise FileExistsError if not overwriting and the name is taken."""

    def publish(
        self, path: str, data: bytes, *, overwrite: bool = False, before_publish: Hook = None
    ) -> None:
        """Publish `data` at `path` atomically (create-once unless `overwrite`).

        Args:
            path: backend path of the object.
            data: the complete bytes.
            overwrite: replace an existing object (still atomic) instead of refusing.
            before_publish: called once the bytes are durable but not yet visible under `path`
                (local: temp file fsynced, before the link; object store: before the PUT). Crash
                points hook in here.

        Raises:
            AlreadyPublishedError: `overwrite` is false and `path` already exists.
            PublishError: the write failed and nothing was published.
        """
        try:
            self._put(path, bytes(data), overwrite=overwrite, hook=before_publish)
        except AlreadyPublishedError:
            raise
        except FileExistsError as exc:
            raise self._already(path, data) from exc
        except OSError as exc:
            raise PublishError(f"could not publish {path!r}: {exc}") from exc

    def read(self, path: str) -> bytes:
        """Read a published object, bypassing any listing cache."""
        self.fs.invalidate_cache(path)
        return bytes(self.fs.cat_file(path))

    def exists(self, path: str) -> bool:
        """Whether `path` is published, bypassing any listing cache."""
        self.fs.invalidate_cache(path)
        return bool(self.fs.exists(path))

    def _already(self, path: str, data: bytes) -> AlreadyPublishedError:
        try:
            identical = self.read(path) == data
        except OSError:
            identical = False
        return AlreadyPublishedError(f"{path!r} is already published (create-once)", identical=identical)


class LocalPublisher(Publisher):
    """Temp file, fsync, link/replace, fsync of the directory."""

    def _put(self, path: str, data: bytes, *, overwrite: bool, hook: Hook) -> None:
        directory = os.path.dirname(path) or "."
        make_directories(directory)
        tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if hook is not None:
                hook()
            if overwrite:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)  # atomic create-once: EEXIST if the name is taken
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        fsync_directory(directory)

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def exists(self, path: str) -> bool:
        return os.path.exists(path)


_MEMORY_LOCK = threading.Lock()


class MemoryPublisher(Publisher):
    """fsspec's in-process memory store: check-and-write under one lock."""

    def _put(self, path: str, data: bytes, *, overwrite: bool, hook: Hook) -> None:
        if hook is not None:
            hook()
        with _MEMORY_LOCK:
            if not overwrite and self.fs.exists(path):
                raise FileExistsError(path)
            self.fs.pipe_file(path, data)


class ObjectStorePublisher(Publisher):
    """One conditional PUT per key (`If-None-Match: *`); a failed put is settled by looking."""

    def exists(self, path: str) -> bool:
        """One HEAD of the key (fsspec's generic `exists` also lists the prefix, for directories)."""
        return object_exists(self.fs, path)

    def _put(self, path: str, data: bytes, *, overwrite: bool, hook: Hook) -> None:
        if hook is not None:
            hook()
        if overwrite:
            self.fs.pipe_file(path, data)
            return
        try:
            self.fs.pipe_file(path, data, mode="create")
        except Exception as exc:  # 412 arrives as FileExistsError, OSError(EINVAL), or a client error
            if put_failed_because_taken(self.fs, path):
                raise self._already(path, data) from exc
            raise PublishError(f"conditional put of {path!r} failed: {exc}") from exc


_PUBLISHERS: dict[str, type[Publisher]] = {
    "local": LocalPublisher,
    "memory": MemoryPublisher,
    "object-store": ObjectStorePublisher,
}


def publisher_for(fs: AbstractFileSystem) -> Publisher:
    """The publisher matching the filesystem's capability.

    Raises:
        UnsupportedStorageError: the filesystem has no trusted create-once primitive.
    """
    return _PUBLISHERS[capability_of(fs)](fs)


def publish(
    url: str,
    data: bytes,
    *,
    storage_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> None:
    """Publish `data` at `url` atomically, create-once unless `overwrite`.

    Args:
        url: local path or fsspec URL of the object.
        data: the complete bytes.
        storage_options: fsspec options for the filesystem.
        overwrite: replace an existing object (still atomic) instead of refusing.

    Raises:
        AlreadyPublishedError: `overwrite` is false and `url` already exists.
        PublishError: the write failed and nothing was published.
    """
    fs, path = resolve(url, storage_options)
    publisher_for(fs).publish(path, data, overwrite=overwrite)
