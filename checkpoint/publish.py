"""Atomic, create-once publish of a whole object, through the storage's own `publish`.

A published name is either absent or holds the complete bytes of one `publish` call: readers never see
a torn object. By default a name is written once (`overwrite=False`): a second publish to the same name
raises `AlreadyPublishedError`, which is how a zombie driver is fenced off names a newer driver took.

The technique belongs to the storage (`wal.storage`), chosen by its capabilities, and this module only
names the outcome in the checkpoint package's terms:

- local disk (`atomic_rename`): a temp file in the target directory, fsynced, linked to the final
  name (EEXIST if taken; replaced when overwriting), then the directory fsynced. A crash leaves at
  worst a dot-prefixed temp file, which every reader ignores.
- object stores (`conditional_put`): one PUT with ``If-None-Match: *``; a failed put is settled by
  looking at the key. fsspec memory: check-and-write under one process-wide lock.

`AlreadyPublishedError.identical` says whether the existing bytes equal the bytes being published. A
caller whose bytes carry a unique nonce can treat `identical` as "my own earlier attempt won" (an S3
client retry after a lost response sees its own object as a 412).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from checkpoint.errors import AlreadyPublishedError, PublishError
from checkpoint.location import resolve
from wal.storage import Storage

Hook = Callable[[], None] | None


class Publisher:
    """Publishes whole objects atomically on one storage, with the checkpoint package's errors."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def publish(
        self, path: str, data: bytes, *, overwrite: bool = False, before_publish: Hook = None
    ) -> None:
        """Publish `data` at `path` atomically (create-once unless `overwrite`).

        Args:
            path: storage path of the object.
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
            self.storage.publish(path, bytes(data), overwrite=overwrite, before_publish=before_publish)
        except AlreadyPublishedError:
            raise
        except FileExistsError as exc:
            raise self._already(path, data) from exc
        except OSError as exc:
            raise PublishError(f"could not publish {path!r}: {exc}") from exc

    def read(self, path: str) -> bytes:
        """Read a published object, bypassing any listing cache. Raises FileNotFoundError."""
        return self.storage.read(path)

    def exists(self, path: str) -> bool:
        """Whether `path` is published, bypassing any listing cache."""
        return self.storage.exists(path)

    def _already(self, path: str, data: bytes) -> AlreadyPublishedError:
        try:
            identical = self.read(path) == data
        except OSError:
            identical = False
        return AlreadyPublishedError(f"{path!r} is already published (create-once)", identical=identical)


def publisher_for(storage: Storage) -> Publisher:
    """The publisher for objects on `storage`."""
    return Publisher(storage)


def publish(
    url: str,
    data: bytes,
    *,
    storage_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> None:
    """Publish `data` at `url` atomically, create-once unless `overwrite`.

    Args:
        url: local path or URL of the object.
        data: the complete bytes.
        storage_options: options for the storage.
        overwrite: replace an existing object (still atomic) instead of refusing.

    Raises:
        AlreadyPublishedError: `overwrite` is false and `url` already exists.
        PublishError: the write failed and nothing was published.
        UnsupportedStorageError: no storage is registered for the URL's protocol.
    """
    storage, path = resolve(url, storage_options)
    publisher_for(storage).publish(path, data, overwrite=overwrite)
