"""Resolve a URL plus storage options to its `wal.storage.Storage` and path: a thin adapter.

Every public function of the package takes a URL and `storage_options`; this module is where they
become a storage, by asking the one registry in `wal.storage` (so the WAL and checkpoints accept
exactly the same URLs, and a registered wrapper serves both). It only turns the registry's errors
into this package's (`CheckpointValueError`, `UnsupportedStorageError`). Storages are cached per
process by the registry, so resolving a URL per call is cheap and functions stay plain and picklable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from checkpoint.errors import CheckpointValueError, UnsupportedStorageError
from wal.errors import UnsupportedStorageError as WALUnsupportedStorageError
from wal.errors import WALValueError
from wal.storage import Kind, Storage, resolve_storage

Capability = Kind
"""A storage's family: how publish and the driver lease work on it ("local", "memory", "object-store")."""


def resolve(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Storage, str]:
    """Return the storage serving `url` and the path on it.

    Args:
        url: a local path or a URL of a registered protocol (file://, memory://, s3://, ...).
        storage_options: options for the storage (endpoint, keys, ...).

    Raises:
        CheckpointValueError: `url` is not a non-empty string.
        UnsupportedStorageError: no storage is registered for the URL's protocol.
    """
    try:
        return resolve_storage(url, storage_options)
    except WALUnsupportedStorageError as exc:
        raise UnsupportedStorageError(str(exc)) from exc
    except WALValueError as exc:
        raise CheckpointValueError(str(exc)) from exc


def capability_of(storage: Storage) -> Capability:
    """The storage's family, as its `kind` attribute states it (never guessed from a protocol)."""
    return storage.kind


def absolute_url(url: str) -> str:
    """`url` with a local path made absolute (against the working directory, once), else as given.

    Checkpoint and WAL locations are absolutized at the API edge, so that what a driver stores and
    what a restarted one (or the CLI) reads does not depend on the directory it was started from.
    """
    if "://" in url or "::" in url:
        return url
    return os.path.abspath(os.path.expanduser(url))


def relative_to(dir_url: str, url: str) -> str | None:
    """`url` as a path relative to `dir_url` if it lies inside it, else None."""
    prefix = dir_url.rstrip("/") + "/"
    return url[len(prefix) :].strip("/") or None if url.startswith(prefix) else None


def join(base: str, *parts: str) -> str:
    """Join URL or path segments with '/' without doubling separators."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def base_name(path: str) -> str:
    """The last segment of a storage path or URL (`a/b/` -> `b`)."""
    return path.rstrip("/").rsplit("/", 1)[-1]
