"""The background metadata checkpoint writer: order, callbacks, retention, back-pressure, fencing."""

from __future__ import annotations

import threading

import pytest

from checkpoint import rdd_data
from checkpoint.errors import CheckpointQueueFullError, DriverLeaseError, PublishError
from checkpoint.layout import CheckpointName, rdd_checkpoint_dir
from checkpoint.metadata import (
    DataCheckpointRef,
    MetadataCheckpoint,
    list_checkpoints,
    read_latest,
    write_checkpoint,
)
from checkpoint.metadata_writer import MetadataCheckpointWriter, WrittenInfo
from tests.support.s3servers import StorageTarget

TIMEOUT_S = 30.0


def ckpt(
    batch_ms: int, refs: tuple[DataCheckpointRef, ...] = (), wal_from: int | None = None
) -> MetadataCheckpoint:
    return MetadataCheckpoint(
        batch_ms, f"graph-{batch_ms}".encode(), data_checkpoints=refs, wal_needed_from_ms=wal_from
    )


def test_two_checkpoints_per_batch_and_late_completion(storage: StorageTarget) -> None:
    written: list[tuple[int, WrittenInfo]] = []
    with MetadataCheckpointWriter(
        storage.url,
        storage_options=storage.storage_options,
        key=None,
        on_written=lambda b, i: written.append((b, i)),
    ) as writer:
        writer.write(ckpt(1000))  # generation of 1000
        writer.write(ckpt(2000))  # generation of 2000
        writer.write(ckpt(1000))  # completion of 1000, late
        writer.flush(TIMEOUT_S)
    assert [(b, i.name) for b, i in written] == [
        (1000, CheckpointName(1000, 0)),
        (2000, CheckpointName(2000, 1)),
        (1000, CheckpointName(2000, 2)),
    ]
    latest, _ = read_latest(storage.url, storage_options=storage.storage_options, key=None)
    assert latest is not None and latest.name == CheckpointName(2000, 2) and latest.batch_ms == 1000


def test_restarted_writer_ranks_above_existing(storage: StorageTarget) -> None:
    so = storage.storage_options
    write_checkpoint(storage.url, ckpt(5000), CheckpointName(5000, 7), storage_options=so, key=None)
    with MetadataCheckpointWriter(storage.url, storage_options=so, key=None) as writer:
        writer.write(ckpt(4000))  # a re-run batch after recovery
        writer.flush(TIMEOUT_S)
    assert list_checkpoints(storage.url, storage_options=so)[-1] == CheckpointName(5000, 8)


def test_keeps_last_n_and_cleans_unreferenced_rdd_data(storage: StorageTarget) -> None:
    so = storage.storage_options
    for batch in (1000, 2000, 3000, 4000):
        d = rdd_checkpoint_dir(storage.url, "7", batch)
        rdd_data.write_part(d, 0, b"state", storage_options=so)
        rdd_data.commit(d, 1, storage_options=so)

    def ref(batch: int) -> tuple[DataCheckpointRef, ...]:
        return (DataCheckpointRef("7", batch, rdd_checkpoint_dir(storage.url, "7", batch)),)

    infos: list[WrittenInfo] = []
    with MetadataCheckpointWriter(
        storage.url, storage_options=so, key=None, keep_n=2, on_written=lambda b, i: infos.append(i)
    ) as writer:
        writer.write(ckpt(1000, ref(1000), wal_from=0))
        writer.write(ckpt(2000, ref(2000), wal_from=500))
        writer.write(ckpt(3000, ref(3000), wal_from=1500))
        writer.flush(TIMEOUT_S)
    assert list_checkpoints(storage.url, storage_options=so) == [
        CheckpointName(2000, 1),
        CheckpointName(3000, 2),
    ]
    assert infos[-1].wal_clean_before_ms == 500
    assert infos[-1].deleted_rdd_dirs == [rdd_checkpoint_dir(storage.url, "7", 1000)]
    assert not rdd_data.is_committed(rdd_checkpoint_dir(storage.url, "7", 1000), storage_options=so)
    for kept in (2000, 3000, 4000):  # referenced, or newer than every reference (may be in progress)
        assert rdd_data.is_committed(rdd_checkpoint_dir(storage.url, "7", kept), storage_options=so)


def test_full_queue_blocks_then_raises_never_drops(tmp_path: object) -> None:
    url = "memory://dstream-tests/writer-full"
    entered, release = threading.Event(), threading.Event()

    def slow_fence() -> None:
        entered.set()
        assert release.wait(TIMEOUT_S)

    writer = MetadataCheckpointWriter(
        url, key=None, queue_size_max=1, put_timeout_s=0.05, fence=slow_fence
    ).start()
    writer.write(ckpt(1000))
    assert entered.wait(TIMEOUT_S)  # the thread holds checkpoint 1000; the queue is empty again
    writer.write(ckpt(2000))  # fills the queue
    with pytest.raises(CheckpointQueueFullError, match="batch 3000 not accepted"):
        writer.write(ckpt(3000))
    release.set()
    writer.flush(TIMEOUT_S)
    writer.stop(TIMEOUT_S)
    assert [n.name_ms for n in list_checkpoints(url)] == [1000, 2000]


@pytest.mark.parametrize("failures_n", [2, 3])
def test_publish_failure_is_retried_then_reported(monkeypatch: pytest.MonkeyPatch, failures_n: int) -> None:
    import checkpoint.metadata_writer as mw

    url = f"memory://dstream-tests/writer-fail-{failures_n}"
    calls: list[int] = []
    real = mw.write_checkpoint

    def flaky(*args: object, **kwargs: object) -> str:
        calls.append(1)
        if len(calls) <= failures_n:
            raise PublishError("storage is down")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(mw, "write_checkpoint", flaky)
    failures: list[tuple[int, BaseException]] = []
    infos: list[WrittenInfo] = []
    with MetadataCheckpointWriter(
        url,
        key=None,
        attempts_max=3,
        retry_delay_s=0.0,
        on_written=lambda b, i: infos.append(i),
        on_failed=lambda b, e: failures.append((b, e)),
    ) as writer:
        writer.write(ckpt(1000))
        writer.flush(TIMEOUT_S)
    assert len(calls) == 3
    if failures_n < 3:
        assert infos[0].attempts == 3 and failures == []
    else:
        assert infos == [] and failures[0][0] == 1000 and isinstance(failures[0][1], PublishError)
        assert list_checkpoints(url) == []


def test_fence_failure_stops_the_write() -> None:
    url = "memory://dstream-tests/writer-fence"
    failures: list[BaseException] = []

    def lost_lease() -> None:
        raise DriverLeaseError("lease lost")

    with MetadataCheckpointWriter(
        url, key=None, fence=lost_lease, on_failed=lambda b, e: failures.append(e)
    ) as w:
        w.write(ckpt(1000))
        w.flush(TIMEOUT_S)
    assert [str(e) for e in failures] == ["lease lost"] and list_checkpoints(url) == []


def test_name_taken_by_another_writer_fences_this_one(storage: StorageTarget) -> None:
    so = storage.storage_options
    failures: list[BaseException] = []
    writer = MetadataCheckpointWriter(
        storage.url, storage_options=so, key=None, on_failed=lambda b, e: failures.append(e)
    )
    writer.start()
    # A second driver publishes the name this writer will use next.
    other = MetadataCheckpoint(1000, b"the other driver's graph")
    write_checkpoint(storage.url, other, CheckpointName(1000, 0), storage_options=so, key=None)
    writer.write(ckpt(1000))
    writer.flush(TIMEOUT_S)
    assert isinstance(failures[0], DriverLeaseError) and "another writer" in str(failures[0])
    with pytest.raises(DriverLeaseError, match="fenced"):
        writer.write(ckpt(2000))
    writer.stop(TIMEOUT_S)


def test_zombie_collision_with_a_valid_lease_renames_and_continues(storage: StorageTarget) -> None:
    so = storage.storage_options
    infos: list[WrittenInfo] = []
    writer = MetadataCheckpointWriter(
        storage.url, storage_options=so, key=None, fence=lambda: None, on_written=lambda b, i: infos.append(i)
    ).start()
    # A zombie slipped a checkpoint in between its last lease check and now.
    zombie = MetadataCheckpoint(1000, b"zombie's graph")
    write_checkpoint(storage.url, zombie, CheckpointName(1000, 0), storage_options=so, key=None)
    writer.write(ckpt(1000))
    writer.flush(TIMEOUT_S)
    writer.stop(TIMEOUT_S)
    assert [i.name for i in infos] == [CheckpointName(1000, 1)]
    latest, _ = read_latest(storage.url, storage_options=so, key=None)
    assert latest is not None and latest.graph_blob == b"graph-1000"


def test_non_json_field_fails_in_the_callers_thread() -> None:
    from checkpoint.errors import CheckpointValueError

    with MetadataCheckpointWriter("memory://dstream-tests/writer-json", key=None) as writer:
        bad = MetadataCheckpoint(1000, b"g", config={"conf": object()})
        with pytest.raises(CheckpointValueError, match="batch 1000 has a field that is not plain JSON"):
            writer.write(bad)
