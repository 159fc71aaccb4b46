"""The one storage seam: every durable byte of dstream goes through a `Storage` chosen by the registry.

`base.Storage` is the contract (appendable files, create-once, atomic publish, reads, names, a
lock) with explicit capability attributes; `local.LocalStorage` is the only code that calls
os.write, fsync/fdatasync, os.replace, os.link and flock; `fsspec_store` serves ``memory://`` and
object stores with conditional puts; `registry.resolve_storage` maps a URL to its storage, once, for
every caller; `delegating.DelegatingStorage` is the base of wrappers that must see every call.
"""

from wal.storage.base import AppendFile, Buffer, Kind, LockHandle, RandomAccess, Storage
from wal.storage.delegating import DelegatingStorage
from wal.storage.fsspec_store import FsspecStorage, MemoryStorage, ObjectStoreStorage
from wal.storage.local import LocalStorage
from wal.storage.registry import (
    StorageFactory,
    register_storage,
    resolve_storage,
    storage_for,
    supported_protocols,
    unregister_storage,
)

__all__ = [
    "AppendFile",
    "Buffer",
    "DelegatingStorage",
    "FsspecStorage",
    "Kind",
    "LocalStorage",
    "LockHandle",
    "MemoryStorage",
    "ObjectStoreStorage",
    "RandomAccess",
    "Storage",
    "StorageFactory",
    "register_storage",
    "resolve_storage",
    "storage_for",
    "supported_protocols",
    "unregister_storage",
]
