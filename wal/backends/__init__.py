"""The WAL's segment layouts over a `wal.storage.Storage`, chosen by the storage's capabilities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wal.backends.appendable import AppendableWALBackend
from wal.backends.base import SegmentWriteError, SegmentWriter, WALBackend
from wal.backends.objects import ObjectWALBackend
from wal.errors import UnsupportedStorageError
from wal.storage import Storage, resolve_storage

__all__ = ["SegmentWriteError", "SegmentWriter", "WALBackend", "backend_for", "make_backend"]


def backend_for(storage: Storage, root: str, url: str, fsync: bool) -> WALBackend:
    """The segment layout for a log at `root` on `storage`. Touches nothing on storage.

    Appendable storages get one file per segment; storages with only create-once puts get immutable
    objects.

    Raises:
        UnsupportedStorageError: the storage can neither append nor put create-once.
    """
    if storage.can_append:
        return AppendableWALBackend(storage, root, url, fsync)
    if storage.conditional_put:
        return ObjectWALBackend(storage, root, url)
    raise UnsupportedStorageError(
        f"{storage.describe()} for {url!r} can neither append nor put create-once: no WAL layout fits"
    )


def make_backend(url: str, storage_options: Mapping[str, Any] | None, fsync: bool) -> WALBackend:
    """The backend for `url` (a local path or a URL of a registered protocol). Touches nothing on storage.

    Raises:
        UnsupportedStorageError: no storage is registered for the URL's protocol, or it fits no layout.
    """
    storage, root = resolve_storage(url, storage_options)
    return backend_for(storage, root, url, fsync)
