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
    def __init__(self) -> None:
        self.thresholds: list[int] = []

    def cleanup_old_blocks_and_batches(self, threshold_ms: int, wait: bool = False) -> None:
        self.thresholds.append(threshold_ms)


def test_old_checkpoints_and_tracker_batches_are_cleaned_after_durable_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = FakeTracker()
    monkeypatch.setattr("dstream.receiver.input_stream.receiver_tracker_of", lambda ssc: tracker)
    path, clock, n = str(tmp_path / "ckpt"), ManualClock(0), 30
    ssc = new_context(clock, path)
    events = CheckpointEvents(path)
    ssc.addStreamingListener(events)
    state = ReplayInputDStream(ssc, word_batches(n)).map(lambda w: (w, 1)).updateStateByKey(running_count)
    state.checkpoint(2).foreachRDD(record_lineage)
    ssc.start()
    run_batches(ssc, clock, BATCH_MS, n * BATCH_MS)
    assert ssc._bus.wait_until_empty(30)
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
    assert ssc._bus.wait_until_empty(30)
    ssc.stop(stopSparkContext=False)

    assert failures and set(failures) == {failures[0]} and failures[0].endswith("/4000")
    assert [(e.kind(), e.batchTime().milliseconds()) for e in events.failed] == [("rdd", 4000)]
    assert "injected failure" in events.failed[0].error()
    rdd_written = sorted(e.batchTime().milliseconds() for e in events.written if e.kind() == "rdd")
    assert 4000 not in rdd_written and 6000 in rdd_written
    assert [SINK[t] for t in sorted(SINK)] == ref_running_counts(word_batches(n))
    assert LINEAGE[8000] <= LINEAGE[4000]  # cut again after the 6000 checkpoint
