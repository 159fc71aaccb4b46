"""Cleanup follows checkpoints; metadata checkpoints reference only committed data; a failed data
checkpoint is reported on the listener bus and the next interval's checkpoint cuts the lineage."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from checkpoint import rdd_data
from checkpoint.metadata import list_checkpoints, read_checkpoint
from dstream.clock import ManualClock
from dstream.streaming.listener import StreamingListener
from tests.recovery.support import (
    BATCH_MS,
    LINEAGE,
    SINK,
    ReplayInputDStream,
    new_context,
    record_lineage,
    run_batches,
    running_count,
)
from tests.recovery.test_harness import ref_running_counts, word_batches


class CheckpointEvents(StreamingListener):
    """Keeps checkpoint events; for each metadata checkpoint, whether its data references are committed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.written: list[Any] = []
        self.failed: list[Any] = []
        self.uncommitted_refs: list[str] = []
        self.lock = threading.Lock()

    def onCheckpointWritten(self, checkpointWritten: Any) -> None:
        with self.lock:
            self.written.append(checkpointWritten)
        if checkpointWritten.kind() != "metadata":
            return
        name = list_checkpoints(self.path)[-1]
        for ref in read_checkpoint(self.path, name).data_checkpoints:
            if not rdd_data.is_committed(ref.url):
                self.uncommitted_refs.append(ref.url)

    def onCheckpointFailed(self, checkpointFailed: Any) -> None:
        with self.lock:
            self.failed.append(checkpointFailed)


class FakeTracker:
    """A block allocator with no receivers that records what the generator asks it to clean."""

    def __init__(self) -> None:
        self.thresholds: list[int] = []

    def allocate_blocks_to_batch(self, time_ms: int) -> None:
        pass

    def records_of_batch(self, time_ms: int) -> dict[int, int]:
        return {}

    def cleanup_old_blocks_and_batches(self, threshold_ms: int, wait: bool = False) -> None:
        self.thresholds.append(threshold_ms)


def test_old_checkpoints_and_tracker_batches_are_cleaned_after_durable_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = FakeTracker()
    path, clock, n = str(tmp_path / "ckpt"), ManualClock(0), 30
    ssc = new_context(clock, path)
    ssc.runtime.generator.block_allocator = tracker  # type: ignore[assignment]
    events = CheckpointEvents(path)
    ssc.addStreamingListener(events)
    state = ReplayInputDStream(ssc, word_batches(n)).map(lambda w: (w, 1)).updateStateByKey(running_count)
    state.checkpoint(2).foreachRDD(record_lineage)
    ssc.start()
    run_batches(ssc, clock, BATCH_MS, n * BATCH_MS)
    assert ssc.runtime.bus.wait_until_empty(30)
    ssc.stop(stopSparkContext=False)

    assert len(list_checkpoints(path)) == 10  # keep the newest 10 (2 per batch)
    kept_refs = {
        ref.batch_ms
        for name in list_checkpoints(path)
        for ref in read_checkpoint(path, name).data_checkpoints
    }
    rdd_dirs = sorted(int(p.name) for p in (tmp_path / "ckpt" / "rdd" / str(state._id)).iterdir())
    assert min(rdd_dirs) >= min(kept_refs) and max(rdd_dirs) == n * BATCH_MS
    assert 2000 not in rdd_dirs
    assert events.uncommitted_refs == []
    assert tracker.thresholds and tracker.thresholds == sorted(tracker.thresholds)
    assert tracker.thresholds[-1] <= min(kept_refs)  # never past what a kept checkpoint needs
    assert tracker.thresholds[-1] >= (n - 8) * BATCH_MS  # but it does follow the checkpoints


def test_failed_data_checkpoint_is_reported_and_the_next_interval_cuts_lineage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = rdd_data.write_part
    failures = []

    def flaky_write(dir_url: str, index: int, payload: bytes, **kwargs: Any) -> None:
        # Both ways of writing parts (from cached blocks, or a job's tasks) go through write_part.
        if dir_url.endswith("/4000"):
            failures.append(dir_url)
            raise OSError(f"injected failure writing {dir_url}")
        real_write(dir_url, index, payload, **kwargs)

    monkeypatch.setattr(rdd_data, "write_part", flaky_write)
    path, clock, n = str(tmp_path / "ckpt"), ManualClock(0), 10
    ssc = new_context(clock, path)
    events = CheckpointEvents(path)
    ssc.addStreamingListener(events)
    state = ReplayInputDStream(ssc, word_batches(n)).map(lambda w: (w, 1)).updateStateByKey(running_count)
    state.checkpoint(2).foreachRDD(record_lineage)
    ssc.start()
    run_batches(ssc, clock, BATCH_MS, n * BATCH_MS)
    assert ssc.runtime.bus.wait_until_empty(30)
    ssc.stop(stopSparkContext=False)

    assert failures and set(failures) == {failures[0]} and failures[0].endswith("/4000")
    assert [(e.kind(), e.batchTime().milliseconds()) for e in events.failed] == [("rdd", 4000)]
    assert "injected failure" in events.failed[0].error()
    rdd_written = sorted(e.batchTime().milliseconds() for e in events.written if e.kind() == "rdd")
    assert 4000 not in rdd_written and 6000 in rdd_written
    assert [SINK[t] for t in sorted(SINK)] == ref_running_counts(word_batches(n))
    assert LINEAGE[8000] <= LINEAGE[4000]  # cut again after the 6000 checkpoint


def test_rdd_checkpoint_files_of_an_earlier_run_are_cleaned_and_this_runs_kept(tmp_path: Path) -> None:
    # A user's rdd.checkpoint() writes under rdd/<run id>/: an earlier driver's run directory goes with
    # the next durable checkpoint; the running Context's own stays (a live RDD may read it).
    path, clock = str(tmp_path / "ckpt"), ManualClock(0)
    earlier = tmp_path / "ckpt" / "rdd" / ("f" * 32) / "rdd-3"
    earlier.mkdir(parents=True)
    (earlier / "part-00000").write_bytes(b"old")
    ssc = new_context(clock, path)
    sc = ssc.sparkContext

    def checkpoint_a_side_rdd(rdd: Any) -> None:
        side = rdd.context.parallelize([1, 2, 3])
        side.checkpoint()
        assert side.count() == 3

    ReplayInputDStream(ssc, word_batches(3)).foreachRDD(checkpoint_a_side_rdd)
    ssc.start()
    try:
        run_batches(ssc, clock, BATCH_MS, 3 * BATCH_MS)
    finally:
        ssc.stop(stopSparkContext=False)
    runs = sorted(p.name for p in (tmp_path / "ckpt" / "rdd").iterdir())
    assert runs == [sc.run_id]
    assert any((tmp_path / "ckpt" / "rdd" / sc.run_id).iterdir())
