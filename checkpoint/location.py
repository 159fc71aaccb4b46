"""Resolve an fsspec URL plus storage options to a filesystem and a path, and classify its capability.

Every public function of the package takes a URL and `storage_options`; this module is the one place
that turns them into an fsspec filesystem. Nothing is cached here beyond fsspec's own instance cache,
so functions that call it stay picklable and safe to run on workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import fsspec
from fsspec import AbstractFileSystem

from checkpoint.errors import CheckpointValueError, UnsupportedStorageError

Capability = Literal["local", "memory", "object-store"]

_LOCAL_PROTOCOLS = frozenset({"file", "local"})
_MEMORY_PROTOCOLS = frozenset({"memory"})
# Object stores whose fsspec backend maps `mode="create"` to a conditional put (If-None-Match: *).
_OBJECT_STORE_PROTOCOLS = frozenset({"s3", "s3a"})


def resolve(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
    """Return the filesystem and the backend path for `url`.

    Args:
        url: a local path or an fsspec URL (file://, memory://, s3://).
        storage_options: fsspec options for the filesystem (endpoint, keys, ...).

    Raises:
        CheckpointValueError: `url` is not a non-empty string.
    """
    if not isinstance(url, str) or not url:
        raise CheckpointValueError(f"expected a non-empty URL string, got {url!r}")
    fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    return fs, path


def protocol_of(fs: AbstractFileSystem) -> str:
    """The filesystem's primary protocol name."""
    proto = fs.protocol
    return proto if isinstance(proto, str) else proto[0]


def capability_of(fs: AbstractFileSystem) -> Capability:
    """Which atomic-publish technique the filesystem supports.

    Raises:
        UnsupportedStorageError: the protocol has no create-once primitive we trust.
    """
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if protocols & _LOCAL_PROTOCOLS:
        return "local"
    if protocols & _MEMORY_PROTOCOLS:
        return "memory"
    if protocols & _OBJECT_STORE_PROTOCOLS:
        return "object-store"
    supported = sorted(_LOCAL_PROTOCOLS | _MEMORY_PROTOCOLS | _OBJECT_STORE_PROTOCOLS)
    raise UnsupportedStorageError(
        f"no atomic publish for protocol {sorted(protocols)!r}; expected one of {supported}"
    )


def join(base: str, *parts: str) -> str:
    """Join URL or path segments with '/' without doubling separators."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def fresh_listing(fs: AbstractFileSystem, path: str) -> None:
    """Drop fsspec's listing cache for `path`, so a reader sees what other processes published."""
    fs.invalidate_cache(path)
