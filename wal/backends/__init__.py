"""Storage backends, chosen by capability from the URL's protocol."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fsspec

from wal.backends.base import SegmentWriteError, SegmentWriter, WALBackend
from wal.backends.local import LocalWALBackend
from wal.backends.memory import MemoryBackend
from wal.backends.objectstore import ObjectStoreBackend

__all__ = ["SegmentWriteError", "SegmentWriter", "WALBackend", "make_backend"]

_LOCAL_PROTOCOLS = {"file", "local"}


def make_backend(url: str, storage_options: Mapping[str, Any] | None, fsync: bool) -> WALBackend:
    """The backend for `url` (a local path or any fsspec URL). Touches nothing on storage.

    Local paths and ``file://`` get append + fsync; ``memory://`` the in-memory appendable backend;
    every other protocol the immutable-object backend.
    """
    fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if protocols & _LOCAL_PROTOCOLS:
        return LocalWALBackend(root, fsync)
    if "memory" in protocols:
        return MemoryBackend(fs, root, url)
    return ObjectStoreBackend(fs, root, url)
