"""Asynchronous data checkpoints write cached partitions from the writer thread, not in a job."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from checkpoint import rdd_data
from checkpoint.errors import DriverLeaseError
from checkpoint.metadata import DataCheckpointRef
from dstream.context import Context
from dstream.recovery.block_parts import cached_partitions, write_parts
from dstream.recovery.data_checkpoints import RddCheckpointer
from tests.support.s3servers import StorageTarget

WAIT_S = 10.0
SLOT_TAKEN = threading.Event()
SLOT_RELEASE = threading.Event()


@pytest.fixture
def sc1() -> Iterator[Context]:
    """One task slot, so a single blocked task leaves no room for a checkpoint job."""
    ctx = Context("local[1]", appName="block-parts-test")
    yield ctx
    SLOT_RELEASE.set()
    ctx.stop()


def hold_the_slot(records: Iterator[Any]) -> None:
    SLOT_TAKEN.set()
    SLOT_RELEASE.wait(WAIT_S)


def cached_pairs(sc: Context) -> tuple[Any, list[list[Any]]]:
    rdd = sc.parallelize([(f"k{i}", i) for i in range(30)], 3).mapValues(lambda v: v * 2).persist()
    partitions = rdd.glom().collect()  # computes and caches every partition
    return rdd, partitions


def read_back(dir_url: str, n: int, options: dict[str, Any]) -> list[list[Any]]:
    return [pickle.loads(rdd_data.read_part(dir_url, i, storage_options=options)) for i in range(n)]


def checkpointer(base: str, options: dict[str, Any], errors: list[Any] | None = None) -> RddCheckpointer:
    on_error = None if errors is None else (lambda *args: errors.append(args))
    return RddCheckpointer(lambda sid, t: f"{base}/rdd/{sid}/{t}", options, on_error=on_error)


def test_a_cached_rdd_is_written_while_every_task_slot_is_busy(sc1: Context, storage: StorageTarget) -> None:
    SLOT_TAKEN.clear()
    SLOT_RELEASE.clear()
    rdd, partitions = cached_pairs(sc1)
    # Two tasks, so the job uses the pool (a one-task job runs inline in the calling thread).
    blocker = threading.Thread(target=lambda: sc1.parallelize([0, 1], 2).foreachPartition(hold_the_slot))
    blocker.start()
    assert SLOT_TAKEN.wait(WAIT_S)
    ck = checkpointer(storage.url, storage.storage_options)
    try:
        ck.mark(7, 2000, rdd)
        ck.on_batch_completed(2000)
        # A checkpoint job would wait for the slot; the block path does not need one.
        assert ck.wait_idle(WAIT_S), "the write waited for a task slot"
    finally:
        SLOT_RELEASE.set()
        blocker.join(WAIT_S)
        ck.stop(WAIT_S)
    url = f"{storage.url}/rdd/7/2000"
    assert ck.committed_refs() == (DataCheckpointRef("7", 2000, url),)
    assert rdd_data.committed_partitions(url, storage_options=storage.storage_options) == 3
    assert read_back(url, 3, storage.storage_options) == partitions
    assert rdd.isCheckpointed() and rdd.getCheckpointFile() == url
    assert rdd.glom().collect() == partitions


def test_parts_from_blocks_are_byte_identical_to_the_jobs(sc1: Context, storage: StorageTarget) -> None:
    rdd, _ = cached_pairs(sc1)
    options = storage.storage_options
    by_job, by_blocks = f"{storage.url}/job", f"{storage.url}/blocks"
    rdd._write_checkpoint(by_job, storage_options=options)
    cached = cached_partitions(rdd)
    assert cached is not None
    with ThreadPoolExecutor(2) as io:
        write_parts(by_blocks, cached, options, io)
    fs = storage.filesystem()
    for name in [rdd_data.part_name(i) for i in range(3)] + [rdd_data.COMMIT_MARKER]:
        assert fs.cat_file(f"{by_blocks}/{name}") == fs.cat_file(f"{by_job}/{name}"), name


def test_an_uncached_partition_falls_back_to_a_job(sc1: Context, tmp_path: Any) -> None:
    rdd = sc1.parallelize(range(12), 3).map(lambda x: x + 1).persist()
    assert rdd.take(2) == [1, 2]  # caches partition 0 only
    assert cached_partitions(rdd) is None
    ck = checkpointer(str(tmp_path), {})
    ck.mark(3, 1000, rdd)
    ck.on_batch_completed(1000)
    assert ck.wait_idle(WAIT_S)
    ck.stop(WAIT_S)
    assert read_back(f"{tmp_path}/rdd/3/1000", 3, {}) == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]
    assert rdd.isCheckpointed()


def test_a_failed_part_commits_nothing_and_keeps_the_lineage(
    sc1: Context, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = rdd_data.write_part

    def fail_part_1(dir_url: str, index: int, payload: bytes, **kwargs: Any) -> None:
        if index == 1:
            raise OSError("injected upload failure")
        real_write(dir_url, index, payload, **kwargs)

    monkeypatch.setattr(rdd_data, "write_part", fail_part_1)
    rdd, partitions = cached_pairs(sc1)
    errors: list[Any] = []
    ck = checkpointer(str(tmp_path), {}, errors)
    ck.mark(5, 4000, rdd)
    ck.on_batch_completed(4000)
    assert ck.wait_idle(WAIT_S)
    ck.stop(WAIT_S)
    url = f"{tmp_path}/rdd/5/4000"
    assert [(e[0], e[1], e[2], str(e[3])) for e in errors] == [(5, 4000, url, "injected upload failure")]
    assert not rdd_data.is_committed(url)
    assert ck.committed_refs() == () and ck.writes_failed == 1
    assert not rdd.isCheckpointed()
    assert rdd.glom().collect() == partitions


def test_a_fenced_driver_writes_no_data_checkpoint(sc1: Context, tmp_path: Any) -> None:
    """A driver that lost its lease must not write parts that its successor's re-run would adopt."""
    rdd, _ = cached_pairs(sc1)
    errors: list[Any] = []

    def fenced() -> None:
        raise DriverLeaseError("driver 'zombie' (epoch 0) was fenced: another driver took over")

    ck = RddCheckpointer(
        lambda sid, t: f"{tmp_path}/rdd/{sid}/{t}", {}, on_error=lambda *a: errors.append(a), fence=fenced
    )
    ck.mark(4, 1000, rdd)
    ck.on_batch_completed(1000)
    assert ck.wait_idle(WAIT_S)
    ck.stop(WAIT_S)
    assert [type(e[3]) for e in errors] == [DriverLeaseError]
    assert ck.committed_refs() == () and not (tmp_path / "rdd").exists()
    assert not rdd.isCheckpointed()
