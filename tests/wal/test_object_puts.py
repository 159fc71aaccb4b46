"""Object-store puts: a failed create-once put is settled by looking at the key, never by its message."""

from __future__ import annotations

import uuid
from typing import Any

import fsspec
import pytest

from tests.support.s3servers import StorageTarget
from wal.backends import SegmentWriteError, make_backend
from wal.backends.objects import ObjectSegmentWriter
from wal.format import encode_file_header
from wal.storage import ObjectStoreStorage
from wal.storage.fsspec_store import object_exists, put_failed_because_taken

SEGMENT = "log-0000000000-0-1000"


@pytest.mark.parametrize("server", ["s3_moto", pytest.param("s3_seaweedfs", marks=pytest.mark.seaweedfs)])
def test_two_writers_on_one_segment_collide_and_the_key_is_reported_taken(
    request: pytest.FixtureRequest, server: str
) -> None:
    target: StorageTarget = request.getfixturevalue(server)
    backend = make_backend(target.url, target.storage_options, fsync=True)
    backend.open_segment(SEGMENT, encode_file_header()).append([b"first"], 0, 0)
    with pytest.raises(SegmentWriteError, match="the key exists") as info:
        backend.open_segment(SEGMENT, encode_file_header()).append([b"second"], 0, 0)  # same object name 0
    assert info.value.rolled_back


class FailingPuts:
    """A memory filesystem whose create-once puts fail with a message that happens to contain 412."""

    def __init__(self) -> None:
        self.fs = fsspec.filesystem("memory")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fs, name)

    def pipe_file(self, path: str, data: bytes, mode: str = "overwrite") -> None:
        raise OSError(f"connection reset while sending {path} after 412 ms")


def test_a_failed_put_whose_message_mentions_412_is_not_taken_for_an_existing_key() -> None:
    root = f"/puts-{uuid.uuid4().hex}"
    writer = ObjectSegmentWriter(
        ObjectStoreStorage(FailingPuts(), "memory"), root, SEGMENT, encode_file_header()
    )
    with pytest.raises(SegmentWriteError) as info:
        writer.append([b"x"], 412, 412)
    assert "exists" not in str(info.value) and "connection reset" in str(info.value)


def test_object_exists_bypasses_the_listing_cache() -> None:
    fs = fsspec.filesystem("memory")
    path = f"/keys-{uuid.uuid4().hex}/a"
    assert not object_exists(fs, path)
    fs.pipe_file(path, b"1")
    assert object_exists(fs, path) and put_failed_because_taken(fs, path)


def test_an_unreachable_store_does_not_count_as_taken() -> None:
    class Unreachable:
        def invalidate_cache(self, path: str) -> None:
            pass

        def exists(self, path: str) -> bool:
            raise ConnectionError("store unreachable")

    assert not put_failed_because_taken(Unreachable(), "bucket/key")
