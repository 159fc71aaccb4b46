"""A wrapping storage sees every call: WAL appends and fsyncs, publish, checkpoints, the lease, sinks.

The recorder wraps local storage through `DelegatingStorage` and is registered for a protocol of its
own, the way a fault injector plugs in; every layer then resolves its URLs to it, local fast paths
included (the WAL's appends and fdatasyncs, publish's link, the lease's flock).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import wal
from checkpoint.layout import CheckpointName
from checkpoint.lease import acquire_driver_lease
from checkpoint.metadata import MetadataCheckpoint, read_checkpoint, write_checkpoint
from checkpoint.publish import publish
from dstream.sinks.text_files import read_text_batches, save_text_batch
from tests.support.contexts import engine_context
from wal.storage import (
    AppendFile,
    Buffer,
    DelegatingStorage,
    LocalStorage,
    LockHandle,
    Storage,
    register_storage,
    unregister_storage,
)
from wal.storage.base import Hook

PROTOCOL = "recording"


class RecordingStorage(DelegatingStorage):
    """Notes (operation, path) for the calls a fault injector would most want to break."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _note(self, operation: str, path: str) -> None:
        with self._lock:
            self.calls.append((operation, path))

    def ops(self, under: str) -> Counter[str]:
        """How many times each operation touched a path under `under`."""
        with self._lock:
            return Counter(op for op, path in self.calls if path.startswith(under))

    def open_append(self, path: str) -> AppendFile:
        self._note("open_append", path)
        return super().open_append(path)

    def append(self, file: AppendFile, buffers: Sequence[Buffer]) -> None:
        self._note("append", file.path)
        super().append(file, buffers)

    def fsync(self, file: AppendFile, *, data_only: bool = False) -> None:
        self._note("fdatasync" if data_only else "fsync", file.path)
        super().fsync(file, data_only=data_only)

    def fsync_dir(self, path: str) -> None:
        self._note("fsync_dir", path)
        super().fsync_dir(path)

    def publish(
        self, path: str, data: bytes, *, overwrite: bool = False, before_publish: Hook = None
    ) -> None:
        self._note("publish", path)
        super().publish(path, data, overwrite=overwrite, before_publish=before_publish)

    def rename_dir(self, source: str, target: str) -> None:
        self._note("rename_dir", target)
        super().rename_dir(source, target)

    def read(self, path: str) -> bytes:
        self._note("read", path)
        return super().read(path)

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        self._note("read_range", path)
        return super().read_range(path, offset, length)

    def lock(self, path: str, holder: bytes) -> LockHandle:
        self._note("lock", path)
        return super().lock(path, holder)

    def unlock(self, handle: LockHandle) -> None:
        self._note("unlock", handle.path)
        super().unlock(handle)


@pytest.fixture
def recorder() -> Iterator[RecordingStorage]:
    storage = RecordingStorage(LocalStorage())
    register_storage(PROTOCOL, lambda protocol, options: storage)
    try:
        yield storage
    finally:
        unregister_storage(PROTOCOL)


def test_wal_appends_and_fsyncs_go_through_the_wrapper(recorder: RecordingStorage, tmp_path: Path) -> None:
    url = f"{PROTOCOL}://{tmp_path}/wal"
    with wal.open_wal(url) as log:
        handles = [log.write(f"r{i}".encode(), i) for i in range(3)]
        assert [log.read(h) for h in handles] == [b"r0", b"r1", b"r2"]
    with wal.open_wal(url) as log:
        assert list(log.read_all()) == [b"r0", b"r1", b"r2"]
    ops = recorder.ops(f"{tmp_path}/wal")
    # One segment: created with its header (append + fsync), then one append + fdatasync per record.
    assert ops["open_append"] == 1
    assert ops["append"] == 1 + 3
    assert ops["fsync"] == 1 and ops["fdatasync"] == 3
    assert ops["fsync_dir"] >= 1
    assert ops["read_range"] == 3


def test_batched_wal_commits_go_through_the_wrapper(recorder: RecordingStorage, tmp_path: Path) -> None:
    url = f"{PROTOCOL}://{tmp_path}/batched"
    with wal.open_wal(url, batched=True) as log:
        log.write(b"a", 1)
        commits = log.statistics().commits
    assert recorder.ops(f"{tmp_path}/batched")["fdatasync"] == commits == 1


def test_publish_and_metadata_checkpoint_go_through_the_wrapper(
    recorder: RecordingStorage, tmp_path: Path
) -> None:
    publish(f"{PROTOCOL}://{tmp_path}/obj", b"bytes")
    assert recorder.ops(f"{tmp_path}/obj")["publish"] == 1
    assert (tmp_path / "obj").read_bytes() == b"bytes"

    ckpt_dir = f"{PROTOCOL}://{tmp_path}/ckpt"
    name = CheckpointName(1000, 0)
    write_checkpoint(ckpt_dir, MetadataCheckpoint(1000, b"graph"), name, key=None)
    assert read_checkpoint(ckpt_dir, name, key=None).batch_ms == 1000
    ops = recorder.ops(f"{tmp_path}/ckpt/metadata/{name.filename()}")
    assert ops["publish"] == 1 and ops["read"] == 1


def test_the_driver_lease_locks_through_the_wrapper(recorder: RecordingStorage, tmp_path: Path) -> None:
    lease = acquire_driver_lease(f"{PROTOCOL}://{tmp_path}/ckpt", "driver-1")
    lease.release()
    assert recorder.ops(f"{tmp_path}/ckpt/metadata/driver.lock") == Counter({"lock": 1, "unlock": 1})


def test_text_sink_writes_go_through_the_wrapper(recorder: RecordingStorage, tmp_path: Path) -> None:
    with engine_context() as sc:
        assert save_text_batch(sc.parallelize(range(6), 2), f"{PROTOCOL}://{tmp_path}/out-1000")
    assert read_text_batches(f"{PROTOCOL}://{tmp_path}/out") == {1000: [str(i) for i in range(6)]}
    ops = recorder.ops(f"{tmp_path}/")
    assert ops["publish"] == 2 + 1  # two parts and _SUCCESS, into the temp directory
    assert ops["rename_dir"] == 1  # then the directory is published by rename
    assert recorder.ops(f"{tmp_path}/out-1000/")["read"] == 3  # _SUCCESS and two parts read back
