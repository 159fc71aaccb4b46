"""Atomic create-once publish on every storage backend."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from checkpoint.errors import AlreadyPublishedError, UnsupportedStorageError
from checkpoint.location import resolve
from checkpoint.publish import publish
from tests.support.s3servers import StorageTarget


def test_publish_technique_is_the_storage_capability(storage: StorageTarget) -> None:
    """Local disk publishes by rename, every other store by a (conditional) create-once put."""
    resolved, _ = resolve(storage.url, storage.storage_options)
    expected = {
        "local": ("local", True, False),
        "memory": ("memory", False, True),
        "s3-moto": ("object-store", False, True),
        "s3-seaweedfs": ("object-store", False, True),
    }[storage.kind]
    assert (resolved.kind, resolved.atomic_rename, resolved.conditional_put) == expected


def test_create_once_refuses_second_publish(storage: StorageTarget) -> None:
    url = storage.child("a/b/obj").url
    so = storage.storage_options
    publish(url, b"first", storage_options=so)
    with pytest.raises(AlreadyPublishedError) as info:
        publish(url, b"second", storage_options=so)
    assert info.value.identical is False
    assert isinstance(info.value, FileExistsError)
    assert storage.filesystem().cat_file(url) == b"first"


def test_identical_republish_is_flagged(storage: StorageTarget) -> None:
    url = storage.child("obj").url
    publish(url, b"same", storage_options=storage.storage_options)
    with pytest.raises(AlreadyPublishedError) as info:
        publish(url, b"same", storage_options=storage.storage_options)
    assert info.value.identical is True


def test_overwrite_replaces(storage: StorageTarget) -> None:
    url = storage.child("obj").url
    publish(url, b"one", storage_options=storage.storage_options)
    publish(url, b"two", storage_options=storage.storage_options, overwrite=True)
    assert storage.filesystem().cat_file(url) == b"two"


def test_concurrent_create_once_has_exactly_one_winner(storage: StorageTarget) -> None:
    url = storage.child("race").url
    writers_n = 6
    barrier = threading.Barrier(writers_n, timeout=30)
    winners: list[int] = []
    losers: list[int] = []

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            publish(url, f"writer-{i}".encode(), storage_options=storage.storage_options)
            winners.append(i)
        except AlreadyPublishedError:
            losers.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(writers_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(winners) == 1 and len(losers) == writers_n - 1
    assert storage.filesystem().cat_file(url) == f"writer-{winners[0]}".encode()


def test_local_publish_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "obj"
    publish(str(target), b"x")
    with pytest.raises(AlreadyPublishedError):
        publish(str(target), b"y")
    assert os.listdir(target.parent) == ["obj"]


def test_unsupported_protocol_is_named() -> None:
    with pytest.raises(UnsupportedStorageError, match="http"):
        publish("http://127.0.0.1:1/x", b"x")
