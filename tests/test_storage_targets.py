"""The storage fixtures reach real servers: a write is readable back, and create-once is enforced."""

from __future__ import annotations

import pytest

from tests.support.s3servers import StorageTarget


def test_round_trip(storage: StorageTarget) -> None:
    fs = storage.filesystem()
    path = storage.child("a/b.bin").url
    fs.makedirs(storage.child("a").url, exist_ok=True)
    fs.pipe_file(path, b"hello")
    assert fs.cat_file(path) == b"hello"


@pytest.mark.parametrize("kind", ["s3-moto", pytest.param("s3-seaweedfs", marks=pytest.mark.seaweedfs)])
def test_object_store_refuses_second_create(kind: str, request: pytest.FixtureRequest) -> None:
    target: StorageTarget = request.getfixturevalue(kind.replace("-", "_"))
    fs = target.filesystem()
    path = target.child("once").url
    fs.pipe_file(path, b"first", mode="create")
    with pytest.raises(OSError):
        fs.pipe_file(path, b"second", mode="create")
    assert fs.cat_file(path) == b"first"
