"""Resolve an fsspec URL plus storage options to a filesystem and a path, and classify its capability.

Every public function of the package takes a URL and `storage_options`; this module is the one place
that turns them into an fsspec filesystem. Filesystems are cached per process and per (protocol,
storage options), even when the options say `skip_instance_cache`: building an S3 client costs about
0.2 s, and one checkpoint operation resolves several URLs. Every reader here invalidates listing caches
before it lists, so a shared instance never serves stale listings. The cache is keyed by pid, so a
forked worker builds its own clients; functions stay plain and picklable.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
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
    options = dict(storage_options or {})
    protocol = fsspec.core.split_protocol(url)[0] or "file"
    key = (os.getpid(), protocol, json.dumps(options, sort_keys=True, default=repr))
    with _CACHE_LOCK:
        fs = _FS_CACHE.get(key)
        if fs is not None:
            _FS_CACHE.move_to_end(key)
    if fs is None:
        fs, _ = fsspec.core.url_to_fs(url, **options)
        with _CACHE_LOCK:
            _FS_CACHE[key] = fs
            while len(_FS_CACHE) > _FS_CACHE_SIZE_MAX:
                _FS_CACHE.popitem(last=False)
    return fs, str(fs._strip_protocol(url))


_FS_CACHE_SIZE_MAX = 32
_FS_CACHE: OrderedDict[tuple[int, str, str], AbstractFileSystem] = OrderedDict()
_CACHE_LOCK = threading.Lock()


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
