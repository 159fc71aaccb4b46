"""The one capability registry: a URL's protocol decides which `Storage` serves it, for every caller.

The WAL, checkpoints, the lease and the sinks all resolve URLs here, so one decision holds
everywhere: a protocol is served only if it is registered, and an unknown one is refused with an
error naming the URL and the supported protocols (never guessed to be an object store). Built in:
``file``/``local`` (and plain paths) -> `LocalStorage`, ``memory`` -> `MemoryStorage`, ``s3``/``s3a``
-> `ObjectStoreStorage` (their fsspec backend maps ``mode="create"`` to ``If-None-Match: *``).

A wrapper plugs in by registering a factory for a protocol of its own (or over a built-in one):
``register_storage("faulty", lambda protocol, options: FaultInjector(LocalStorage()))`` and then
``faulty:///data/ckpt`` is served by it everywhere. Registration is per process; so that every
process (drivers, Dask workers, the CLI) finds a wrapper without any engine module importing it, a
protocol that is not registered is looked up, on first use, among the entry points of the group
``dstream.storage`` (name: the protocol; value: its `StorageFactory`), loaded and registered.

Chained URLs, fsspec's syntax: ``outer::inner://path`` (``faulty::file:///data/ckpt``,
``faulty::s3://bucket/x``, ``a::b::s3://...``) is served by the storage the factory of ``outer``
builds around the storage of ``inner://path``, which the registry resolves first and hands to the
factory as the option ``target_storage`` (a `Storage`; absent for an unchained URL). Only the last
link carries the path. Storage options follow fsspec's rule for chains: a key named after a
protocol of the chain holds that link's options (``{"s3": {"endpoint_url": ...}}``); every other key
goes to the outermost link.

Storages are cached per process and per (protocol, storage options), even when the options say
``skip_instance_cache``: building an S3 client costs about 0.2 s and one checkpoint operation
resolves several URLs. Readers invalidate listing caches before they list, so a shared instance
never serves stale listings; the cache is keyed by pid, so a forked worker builds its own clients.
"""

from __future__ import annotations

import importlib.metadata
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
ENTRY_POINT_GROUP = "dstream.storage"
TARGET_STORAGE_OPTION = "target_storage"
"""The option through which a wrapper's factory receives the storage of the rest of a chained URL."""


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


def _forget(protocol: str) -> None:
    """Drop cached storages whose chain uses `protocol` (the caller holds `_lock`)."""
    for key in [k for k in _cache if protocol in k[1].split("::")]:
        del _cache[key]


def register_storage(protocol: str, factory: StorageFactory) -> None:
    """Serve URLs of `protocol` with the storages `factory` builds (replacing any earlier one).

    Raises:
        WALValueError: `protocol` is not a plain protocol name.
    """
    if not isinstance(protocol, str) or not protocol.isidentifier():
        raise WALValueError(f"protocol must be a name such as 'faulty', got {protocol!r}")
    with _lock:
        _factories[protocol] = factory
        _forget(protocol)


def unregister_storage(protocol: str) -> None:
    """Undo `register_storage`: a built-in protocol gets its built-in storage back, others are refused."""
    with _lock:
        builtin = BUILTIN_FACTORIES.get(protocol)
        if builtin is None:
            _factories.pop(protocol, None)
        else:
            _factories[protocol] = builtin
        _forget(protocol)


def _declared_protocols() -> list[str]:
    """Protocols declared by installed entry points (group ``dstream.storage``), not loaded."""
    return [ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]


def supported_protocols() -> list[str]:
    """Every protocol a URL may use (registered, or declared by an entry point), sorted."""
    with _lock:
        registered = set(_factories)
    return sorted(registered | set(_declared_protocols()))


def _discover(protocol: str) -> StorageFactory | None:
    """Load and register the factory an entry point declares for `protocol`, if any.

    Raises:
        UnsupportedStorageError: the entry point exists but does not load to a callable.
    """
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=protocol):
        try:
            factory = entry_point.load()
        except Exception as exc:
            raise UnsupportedStorageError(
                f"protocol {protocol!r} is declared by entry point {entry_point.value!r} "
                f"(group {ENTRY_POINT_GROUP!r}), which failed to load: {exc!r}"
            ) from exc
        if not callable(factory):
            raise UnsupportedStorageError(
                f"entry point {entry_point.value!r} (group {ENTRY_POINT_GROUP!r}) must name a storage "
                f"factory (protocol, options) -> Storage, got {factory!r}"
            )
        with _lock:
            return _factories.setdefault(protocol, factory)
    return None


def _factory(protocol: str, url: str) -> StorageFactory:
    with _lock:
        factory = _factories.get(protocol)
    factory = factory or _discover(protocol)
    if factory is None:
        raise UnsupportedStorageError(
            f"no storage for {url!r}: protocol {protocol!r} is not registered; "
            f"expected one of {supported_protocols()}"
        )
    return factory


def split_url(url: str) -> tuple[list[str], str]:
    """The protocols of `url`, outermost first, and the path the last one serves.

    ``"faulty::file:///p"`` -> ``(["faulty", "file"], "/p")``; a plain path is ``(["file"], path)``.

    Raises:
        WALValueError: a link other than the last carries a path (``a://x::file:///p``).
    """
    *wrappers, last = url.split("::")
    for link in wrappers:
        if not link.removesuffix("://").isidentifier():
            raise WALValueError(
                f"in the chained URL {url!r}, {link!r} must be a bare protocol name: only the last "
                "link carries a path, as in 'faulty::file:///data/ckpt'"
            )
    protocol, rest = fsspec.core.split_protocol(last)
    return [w.removesuffix("://") for w in wrappers] + [protocol or "file"], rest


def _link_options(protocols: list[str], options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each link's options, by fsspec's rule for chains (see the module docstring)."""
    if len(protocols) == 1:
        return [dict(options)]
    named = set(protocols)
    links = [dict(options.get(p) or {}) for p in protocols]
    links[0].update({k: v for k, v in options.items() if k not in named})
    return links


def _cached(key: tuple[int, str, str], build: Callable[[], Storage]) -> Storage:
    with _lock:
        storage = _cache.get(key)
        if storage is not None:
            _cache.move_to_end(key)
            return storage
    storage = build()
    with _lock:
        storage = _cache.setdefault(key, storage)
        while len(_cache) > CACHE_SIZE_MAX:
            _cache.popitem(last=False)
    return storage


def _chain_storage(url: str, protocols: list[str], links: list[dict[str, Any]]) -> Storage:
    key = (os.getpid(), "::".join(protocols), json.dumps(links, sort_keys=True, default=repr))

    def build() -> Storage:
        factory = _factory(protocols[0], url)
        if len(protocols) == 1:
            return factory(protocols[0], links[0])
        inner = _chain_storage(url, protocols[1:], links[1:])
        return factory(protocols[0], {**links[0], TARGET_STORAGE_OPTION: inner})

    return _cached(key, build)


def storage_for(url: str, storage_options: Mapping[str, Any] | None = None) -> Storage:
    """The storage serving `url` (a local path, ``protocol://...`` or a chain), built once per process.

    Raises:
        WALValueError: `url` is not a non-empty string, or a chain's link is not a bare protocol.
        UnsupportedStorageError: no storage is registered or declared for a protocol of the URL.
    """
    if not isinstance(url, str) or not url:
        raise WALValueError(f"expected a non-empty URL string, got {url!r}")
    protocols, _ = split_url(url)
    return _chain_storage(url, protocols, _link_options(protocols, storage_options or {}))


def resolve_storage(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Storage, str]:
    """The storage serving `url` and the URL's path on it.

    Raises:
        WALValueError: `url` is not a non-empty string, or a chain's link is not a bare protocol.
        UnsupportedStorageError: no storage is registered or declared for a protocol of the URL.
    """
    storage = storage_for(url, storage_options)
    return storage, storage.normalize_path(split_url(url)[1])
