"""The storage contract, run against every storage (local, memory, S3 on moto, S3 on SeaweedFS)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import wal
from checkpoint.errors import UnsupportedStorageError as CheckpointUnsupported
from checkpoint.publish import publish
from tests.support.s3servers import StorageTarget
from wal.errors import LockHeldError, UnsupportedStorageError
from wal.storage import (
    DelegatingStorage,
    LocalStorage,
    Storage,
    register_storage,
    resolve_storage,
    storage_for,
    supported_protocols,
    unregister_storage,
)


def resolved(target: StorageTarget) -> tuple[Storage, str]:
    return resolve_storage(target.url, target.storage_options)


def test_create_once_refuses_a_taken_name(storage: StorageTarget) -> None:
    store, root = resolved(storage)
    store.create_once(f"{root}/a/once", b"first")
    with pytest.raises(FileExistsError):
        store.create_once(f"{root}/a/once", b"second")
    assert store.read(f"{root}/a/once") == b"first"


def test_publish_is_create_once_unless_overwriting(storage: StorageTarget) -> None:
    store, root = resolved(storage)
    path = f"{root}/deep/er/obj"
    seen: list[bool] = []
    store.publish(path, b"one", before_publish=lambda: seen.append(store.exists(path)))
    assert seen == [False]  # the hook runs before the name is visible
    with pytest.raises(FileExistsError):
        store.publish(path, b"two")
    store.publish(path, b"three", overwrite=True)
    assert store.read(path) == b"three"
    assert store.list_names(f"{root}/deep/er") == ["obj"]  # no temp file left behind


def test_reads_listings_and_deletes(storage: StorageTarget) -> None:
    store, root = resolved(storage)
    for name, data in [("x", b"xyz"), ("y", b"1"), ("sub/z", b"zz")]:
        store.publish(f"{root}/d/{name}", data)
    assert store.read_range(f"{root}/d/x", 1, 5) == b"yz"
    with store.open_read(f"{root}/d/x") as source:
        assert (source.size, bytes(source.read_at(1, 1))) == (3, b"y")
    assert store.size(f"{root}/d/y") == 1
    assert sorted(store.list_names(f"{root}/d")) == ["sub", "x", "y"]
    assert {k: v for k, v in store.list_sizes(f"{root}/d").items() if k != "sub"} == {"x": 3, "y": 1}
    assert [p.rsplit("/d/", 1)[1] for p in store.find(f"{root}/d")] == ["sub/z", "x", "y"]
    assert store.is_dir(f"{root}/d") and not store.is_dir(f"{root}/d/x")
    store.delete(f"{root}/d/x")
    assert not store.exists(f"{root}/d/x")
    if store.kind == "object-store":
        store.delete(f"{root}/d/x")  # S3 deletes idempotently: a missing key is no error
    else:
        with pytest.raises(FileNotFoundError):
            store.delete(f"{root}/d/x")
    store.delete(f"{root}/d", recursive=True)
    assert store.find(f"{root}/d") == []  # SeaweedFS may still list the emptied directory "sub"
    with pytest.raises(FileNotFoundError):
        store.read(f"{root}/d/y")


def test_appendable_files_append_sync_and_truncate(storage: StorageTarget) -> None:
    store, root = resolved(storage)
    path = f"{root}/log/seg"
    if not store.can_append:
        with pytest.raises(NotImplementedError, match="can_append"):
            store.open_append(path)
        return
    store.make_dirs(f"{root}/log")
    file = store.open_append(path)
    try:
        store.append(file, [b"ab", memoryview(b"cd")])
        store.fsync(file, data_only=True)
        store.append(file, [b"ef"])
        store.fsync(file)
        assert file.size == 6 and store.read(path) == b"abcdef"
        store.truncate_open(file, 4)
        store.append(file, [b"XY"])
        assert store.read(path) == b"abcdXY"
    finally:
        store.close_file(file)
        store.close_file(file)  # idempotent
    with pytest.raises(FileExistsError):
        store.open_append(path)
    store.truncate(path, 2)
    store.fsync_dir(f"{root}/log")
    assert store.read(path) == b"ab"


def test_the_lock_is_exclusive_and_names_its_holder(storage: StorageTarget) -> None:
    store, root = resolved(storage)
    path = f"{root}/meta/lock"
    if not store.can_lock:
        with pytest.raises(NotImplementedError, match="can_lock"):
            store.lock(path, b"me")
        return
    held = store.lock(path, b"driver one")
    with pytest.raises(LockHeldError, match="driver one") as info:
        store.lock(path, b"driver two")
    assert info.value.holder == "driver one"
    store.unlock(held)
    store.unlock(held)  # idempotent
    store.unlock(store.lock(path, b"driver two"))


def test_capabilities_are_stated_per_family(storage: StorageTarget) -> None:
    store, _ = resolved(storage)
    expected = {
        "local": ("local", True, True, False, False, True),
        "memory": ("memory", True, False, True, True, False),
        "s3-moto": ("object-store", False, False, True, True, False),
        "s3-seaweedfs": ("object-store", False, False, True, True, False),
    }[storage.kind]
    got = (store.kind, store.can_append, store.atomic_rename, store.conditional_put,
           store.durable_on_close, store.can_lock)  # fmt: skip
    assert got == expected


def test_local_rename_dir_is_create_once(tmp_path: Path) -> None:
    store = LocalStorage()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"1")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "g").write_bytes(b"2")
    with pytest.raises(FileExistsError):
        store.rename_dir(str(tmp_path / "a"), str(tmp_path / "b"))
    store.rename_dir(str(tmp_path / "a"), str(tmp_path / "c"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "c"]


def test_an_unknown_protocol_is_refused_naming_the_url_and_the_supported_ones() -> None:
    with pytest.raises(UnsupportedStorageError, match=r"'gcs://bucket/x'.*'gcs'.*'file'.*'s3'"):
        resolve_storage("gcs://bucket/x")
    with pytest.raises(ValueError, match="non-empty URL"):
        resolve_storage("")


def test_plain_paths_are_local_and_storages_are_built_once(tmp_path: Path) -> None:
    store, path = resolve_storage(str(tmp_path / "x"))
    assert isinstance(store, LocalStorage) and path == str(tmp_path / "x")
    assert resolve_storage(f"file://{tmp_path}/y") == (store, str(tmp_path / "y"))
    assert storage_for("memory://a", {}) is storage_for("memory://b")


def test_a_registered_wrapper_serves_its_protocol_until_unregistered(tmp_path: Path) -> None:
    wrapper = DelegatingStorage(LocalStorage())
    register_storage("wrapped", lambda protocol, options: wrapper)
    try:
        assert "wrapped" in supported_protocols()
        assert resolve_storage(f"wrapped://{tmp_path}/z") == (wrapper, str(tmp_path / "z"))
    finally:
        unregister_storage("wrapped")
    assert "wrapped" not in supported_protocols()
    with pytest.raises(UnsupportedStorageError):
        resolve_storage(f"wrapped://{tmp_path}/z")
    register_storage("file", lambda protocol, options: wrapper)  # over a built-in protocol
    try:
        assert storage_for(str(tmp_path)) is wrapper
    finally:
        unregister_storage("file")
    assert isinstance(storage_for(str(tmp_path)), LocalStorage)


def test_delegating_storage_forwards_every_operation() -> None:
    """A wrapper that missed one would let that operation bypass a fault injector."""
    operations = {
        name
        for name, member in inspect.getmembers(Storage, inspect.isfunction)
        if not name.startswith("_") and name != "describe"
    }
    assert operations <= set(vars(DelegatingStorage)), operations - set(vars(DelegatingStorage))


def test_the_wal_and_checkpoints_accept_and_refuse_the_same_urls(tmp_path: Path) -> None:
    """One registry decides for every layer: an unknown protocol is refused alike, a registered one served."""
    with pytest.raises(UnsupportedStorageError, match="'gcs'"):
        wal.open_wal("gcs://bucket/log")
    with pytest.raises(CheckpointUnsupported, match="'gcs'") as info:
        publish("gcs://bucket/obj", b"x")
    assert isinstance(info.value, UnsupportedStorageError)  # the same decision, named per package
    register_storage("gcs", lambda protocol, options: LocalStorage(protocol))
    try:
        with wal.open_wal(f"gcs://{tmp_path}/log") as log:
            log.write(b"r", 1)
        publish(f"gcs://{tmp_path}/obj", b"x")
    finally:
        unregister_storage("gcs")
    assert (tmp_path / "obj").read_bytes() == b"x" and (tmp_path / "log").is_dir()
