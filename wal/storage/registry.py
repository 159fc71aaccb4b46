"""The one capability registry: a URL's protocol decides which `Storage` serves it, for every caller.

The WAL, checkpoints, the lease and the sinks all resolve URLs here, so one decision holds
everywhere: a protocol is served only if it is registered, and an unknown one is refused with an
error naming the URL and the supported protocols (never guessed to be an object store). Built in:
``file``/``local`` (and plain paths) -> `LocalStorage`, ``memory`` -> `MemoryStorage`, ``s3``/``s3a``
-> `ObjectStoreStorage` (their fsspec backend maps ``mode="create"`` to ``If-None-Match: *``).

A wrapper plugs in by registering a factory for a protocol of its own (or over a built-in one):
``register_storage("faulty", lambda protocol, options: FaultInjector(LocalStorage()))`` and then
``faulty:///data/ckpt`` is served by it everywhere. Registration is per process: a wrapper used by
tasks on other processes (Dask workers) must be registered there too, e.g. on import of the module
that defines it.

Storages are cached per process and per (protocol, storage options), even when the options say
``skip_instance_cache``: building an S3 client costs about 0.2 s and one checkpoint operation
resolves several URLs. Readers invalidate listing caches before they list, so a shared instance
never serves stale listings; the cache is keyed by pid, so a forked worker builds its own clients.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import fsspec

from wal.errors import UnsupportedStorageError, WALValueError
from wal.storage.base import Storage
from wal.storage.fsspec_store import MemoryStorage, ObjectStoreStorage
from wal.storage.local import LocalStorage

StorageFactory = Callable[[str, Mapping[str, Any]], Storage]
"""Builds the storage for (protocol, storage options)."""

CACHE_SIZE_MAX = 32


def _local(protocol: str, options: Mapping[str, Any]) -> Storage:
    return LocalStorage(protocol)


def _memory(protocol: str, options: Mapping[str, Any]) -> Storage:
    return MemoryStorage(fsspec.filesystem("memory", **options), protocol)


def _object_store(protocol: str, options: Mapping[str, Any]) -> Storage:
    return ObjectStoreStorage(fsspec.filesystem(protocol, **options), protocol)


BUILTIN_FACTORIES: Mapping[str, StorageFactory] = {
    "file": _local,
    "local": _local,
    "memory": _memory,
    "s3": _object_store,
    "s3a": _object_store,
}

_factories: dict[str, StorageFactory] = dict(BUILTIN_FACTORIES)
_cache: OrderedDict[tuple[int, str, str], Storage] = OrderedDict()
_lock = threading.Lock()


def register_storage(protocol: str, factory: StorageFactory) -> None:
    """Serve URLs of `protocol` with the storages `factory` builds (replacing any earlier one).

    Raises:
        WALValueError: `protocol` is not a plain protocol name.
    """
    if not isinstance(protocol, str) or not protocol.isidentifier():
        raise WALValueError(f"protocol must be a name such as 'faulty', got {protocol!r}")
    with _lock:
        _factories[protocol] = factory
        for key in [k for k in _cache if k[1] == protocol]:
            del _cache[key]


def unregister_storage(protocol: str) -> None:
    """Undo `register_storage`: a built-in protocol gets its built-in storage back, others are refused."""
    with _lock:
        builtin = BUILTIN_FACTORIES.get(protocol)
        if builtin is None:
            _factories.pop(protocol, None)
        else:
            _factories[protocol] = builtin
        for key in [k for k in _cache if k[1] == protocol]:
            del _cache[key]


def supported_protocols() -> list[str]:
    """Every protocol a URL may use, sorted."""
    with _lock:
        return sorted(_factories)


def _split(url: str) -> tuple[str, str]:
    protocol, rest = fsspec.core.split_protocol(url)
    return (protocol or "file"), rest


def storage_for(url: str, storage_options: Mapping[str, Any] | None = None) -> Storage:
    """The storage serving `url` (a local path or ``protocol://...``), built once per process.

    Raises:
        WALValueError: `url` is not a non-empty string.
        UnsupportedStorageError: no storage is registered for the URL's protocol.
    """
    if not isinstance(url, str) or not url:
        raise WALValueError(f"expected a non-empty URL string, got {url!r}")
    protocol, _ = _split(url)
    options = dict(storage_options or {})
    key = (os.getpid(), protocol, json.dumps(options, sort_keys=True, default=repr))
    with _lock:
        storage = _cache.get(key)
        if storage is not None:
            _cache.move_to_end(key)
            return storage
        factory = _factories.get(protocol)
    if factory is None:
        raise UnsupportedStorageError(
            f"no storage for {url!r}: protocol {protocol!r} is not registered; "
            f"expected one of {supported_protocols()}"
        )
    storage = factory(protocol, options)
    with _lock:
        storage = _cache.setdefault(key, storage)
        while len(_cache) > CACHE_SIZE_MAX:
            _cache.popitem(last=False)
    return storage


def resolve_storage(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Storage, str]:
    """The storage serving `url` and the URL's path on it.

    Raises:
        WALValueError: `url` is not a non-empty string.
        UnsupportedStorageError: no storage is registered for the URL's protocol.
    """
    storage = storage_for(url, storage_options)
    return storage, storage.normalize_path(_split(url)[1])
