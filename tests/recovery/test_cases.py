"""Recovery edge cases: corrupt newest checkpoint, changed code, queueStream, a second driver,
a graph that cannot be pickled, and textFileStream with files added while the driver was down."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from checkpoint.layout import metadata_checkpoint_url
from checkpoint.metadata import list_checkpoints
from dstream.clock import ManualClock
from dstream.errors import DStreamValueError
from dstream.recovery.fingerprints import CheckpointMismatchError
from dstream.streaming import StreamingContext
from tests.recovery.support import (
    BATCH_MS,
    SINK,
    WAIT_S,
    ReplayInputDStream,
    new_context,
    record,
    run_batches,
    running_count,
)
from tests.recovery.test_harness import ref_running_counts, word_batches

REPO = Path(__file__).resolve().parents[2]


def running_max(values: list[int], state: int | None) -> int:
    return max([*values, state or 0])


def make_setup(clock: ManualClock, path: str, update: Any, inputs: list[list[str]]) -> Any:
    def setup() -> StreamingContext:
        ssc = new_context(clock, path)
        pairs = ReplayInputDStream(ssc, inputs).map(lambda w: (w, 1))
        pairs.updateStateByKey(update).checkpoint(2).foreachRDD(record)
        return ssc

    return setup


def run_first(path: str, clock: ManualClock, setup: Any, n: int) -> None:
    ssc = StreamingContext.getOrCreate(path, setup, clock=clock)
    ssc.start()
    run_batches(ssc, clock, BATCH_MS, n * BATCH_MS)
    ssc.stop(stopSparkContext=False)


def test_corrupt_newest_checkpoint_falls_back(tmp_path: Path) -> None:
    path, clock, inputs = str(tmp_path / "ckpt"), ManualClock(0), word_batches(8)
    setup = make_setup(clock, path, running_count, inputs)
    run_first(path, clock, setup, 5)
    newest = list_checkpoints(path)[-1]
    target = Path(metadata_checkpoint_url(path, newest))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    SINK.clear()

    ssc = StreamingContext.getOrCreate(path, setup, clock=clock)
    assert ssc.recovered.checkpoint_name != newest.filename()
    ssc.start()
    run_batches(ssc, clock, 6 * BATCH_MS, 8 * BATCH_MS)
    ssc.stop(stopSparkContext=False)
    after = [SINK[t] for t in sorted(SINK)]
    assert after == ref_running_counts(inputs)[len(inputs) - len(after) :]


def test_changed_update_function_is_refused_naming_it(tmp_path: Path) -> None:
    path, clock, inputs = str(tmp_path / "ckpt"), ManualClock(0), word_batches(4)
    run_first(path, clock, make_setup(clock, path, running_count, inputs), 2)
    changed = make_setup(clock, path, running_max, inputs)
    with pytest.raises(CheckpointMismatchError, match="running_max") as info:
        StreamingContext.getOrCreate(path, changed, clock=clock)
    assert "running_count" in str(info.value)
    assert StreamingContext.getActive() is None


def test_same_code_is_accepted(tmp_path: Path) -> None:
    path, clock, inputs = str(tmp_path / "ckpt"), ManualClock(0), word_batches(4)
    run_first(path, clock, make_setup(clock, path, running_count, inputs), 2)
    again = make_setup(clock, path, running_count, inputs)  # a new function object, same code
    ssc = StreamingContext.getOrCreate(path, again, clock=clock)
    assert ssc.recovered is not None


def test_queue_stream_with_checkpointing_is_refused(tmp_path: Path) -> None:
    ssc = new_context(ManualClock(0), str(tmp_path / "ckpt"))
    ssc.queueStream([[1], [2]]).foreachRDD(record)
    with pytest.raises(DStreamValueError, match="queueStream doesn't support checkpointing"):
        ssc.start()


def test_unpicklable_graph_fails_at_start(tmp_path: Path) -> None:
    ssc = new_context(ManualClock(0), str(tmp_path / "ckpt"))
    lock = threading.Lock()

    def uses_lock(rdd: Any) -> None:
        with lock:
            rdd.count()

    ReplayInputDStream(ssc, [[1]]).foreachRDD(uses_lock)
    with pytest.raises(DStreamValueError, match="cannot be serialized for checkpointing"):
        ssc.start()
    assert not (tmp_path / "ckpt" / "metadata").exists() or not list_checkpoints(str(tmp_path / "ckpt"))


def test_a_graph_that_pickles_large_is_warned_about_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big = bytes(9 * 2**20)  # captured by value: ends up in every metadata checkpoint

    def uses_big(rdd: Any) -> None:
        rdd.map(lambda x: len(big)).count()

    ssc = new_context(ManualClock(0), str(tmp_path / "ckpt"))
    ReplayInputDStream(ssc, [[1]]).foreachRDD(uses_big)
    with caplog.at_level("WARNING", logger="dstream.recovery.coordinator"):
        ssc.start()
    ssc.stop()
    warnings = [r.getMessage() for r in caplog.records if "pickles to" in r.getMessage()]
    assert len(warnings) == 1 and "9.0 MiB" in warnings[0]


def test_a_small_graph_is_not_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ssc = new_context(ManualClock(0), str(tmp_path / "ckpt"))
    ReplayInputDStream(ssc, [[1]]).foreachRDD(record)
    with caplog.at_level("WARNING", logger="dstream.recovery.coordinator"):
        ssc.start()
    ssc.stop()
    assert not [r for r in caplog.records if "pickles to" in r.getMessage()]


def test_nonexistent_or_empty_directory_calls_setup(tmp_path: Path) -> None:
    calls = []
    clock = ManualClock(0)

    def setup() -> StreamingContext:
        calls.append(1)
        ssc = new_context(clock, str(tmp_path / "x"))
        ReplayInputDStream(ssc, [[1]]).foreachRDD(record)
        return ssc

    ssc = StreamingContext.getOrCreate(str(tmp_path / "x"), setup, clock=clock)
    assert calls == [1] and ssc.recovered is None


def test_second_driver_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    path, ready = str(tmp_path / "ckpt"), tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.recovery.driver_child", "hold", path, str(ready)],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
    )
    try:
        for _ in range(600):
            if ready.exists() or holder.poll() is not None:
                break
            threading.Event().wait(0.05)
        assert ready.exists(), "the first driver did not start"
        second = subprocess.run(
            [sys.executable, "-m", "tests.recovery.driver_child", "start", path],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 3, second.stdout + second.stderr
        assert "DriverLeaseError" in second.stdout and path in second.stdout
    finally:
        holder.kill()
        holder.wait(timeout=30)
        assert holder.stdin is not None
        holder.stdin.close()
    # Once the holder is dead the directory can be taken.
    after = subprocess.run(
        [sys.executable, "-m", "tests.recovery.driver_child", "start", path],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert after.stdout.strip().endswith("started"), after.stdout + after.stderr


def write_file(directory: Path, name: str, lines: int, mtime_ms: int) -> None:
    tmp = directory / f".{name}"
    tmp.write_text("".join(f"w{i % 3}\n" for i in range(lines)))
    os.utime(tmp, (mtime_ms / 1000, mtime_ms / 1000))
    tmp.rename(directory / name)


def test_text_file_stream_takes_files_added_while_down(tmp_path: Path) -> None:
    base = 1_700_000_000_000
    clock = ManualClock(base)
    path, data = str(tmp_path / "ckpt"), tmp_path / "in"
    data.mkdir()
    sizes = {1: 3, 2: 4, 3: 2, 4: 5, 5: 1, 6: 6}

    def setup() -> StreamingContext:
        ssc = new_context(clock, path)
        words = ssc.textFileStream(str(data)).map(lambda w: (w, 1))
        words.updateStateByKey(running_count).checkpoint(2).foreachRDD(record)
        return ssc

    ssc = StreamingContext.getOrCreate(path, setup, clock=clock)
    ssc.start()
    for i in (1, 2, 3):
        write_file(data, f"f{i}", sizes[i], base + i * BATCH_MS - 500)
        run_batches(ssc, clock, base + i * BATCH_MS, base + i * BATCH_MS)
    ssc.stop(stopSparkContext=False)
    for i in (4, 5):  # while the driver is down
        write_file(data, f"f{i}", sizes[i], base + i * BATCH_MS - 500)
    clock.set_time(base + 5 * BATCH_MS)
    ssc = StreamingContext.getOrCreate(path, setup, clock=clock)
    ssc.start()
    for t in (4, 5):
        assert ssc.wait_for_batch(base + t * BATCH_MS, WAIT_S)
    write_file(data, "f6", sizes[6], base + 6 * BATCH_MS - 500)
    run_batches(ssc, clock, base + 6 * BATCH_MS, base + 6 * BATCH_MS)
    ssc.stop(stopSparkContext=False)

    expected: dict[int, list[tuple[str, int]]] = {}
    counts: dict[str, int] = {}
    for i in range(1, 7):
        for j in range(sizes[i]):
            counts[f"w{j % 3}"] = counts.get(f"w{j % 3}", 0) + 1
        expected[base + i * BATCH_MS] = sorted(counts.items(), key=repr)
    assert expected == SINK


def test_recovery_without_a_context_makes_one_from_the_checkpointed_master_and_config(tmp_path: Path) -> None:
    from dstream.context import Conf, Context

    path, clock, inputs = str(tmp_path / "ckpt"), ManualClock(0), word_batches(4)
    Context(conf=Conf().setMaster("local[3]").setAppName("from-checkpoint").set("user.key", "kept"))
    run_first(path, clock, make_setup(clock, path, running_count, inputs), 2)
    Context._active.stop()  # type: ignore[union-attr]
    assert Context._active is None

    ssc = StreamingContext.getOrCreate(path, make_setup(clock, path, running_count, inputs), clock=clock)
    sc = ssc.sparkContext
    assert (sc.master, sc.appName, sc.getConf().get("user.key")) == ("local[3]", "from-checkpoint", "kept")
    ssc.start()
    run_batches(ssc, clock, 3 * BATCH_MS, 4 * BATCH_MS)
    ssc.stop()
    assert [SINK[t] for t in (3000, 4000)] == ref_running_counts(inputs)[2:]


def test_a_relative_checkpoint_directory_recovers_after_a_move_and_from_another_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Written through a relative path; recovered from elsewhere, through another path to a moved copy:
    # the data checkpoint references inside it are relative to the directory, not to a working directory.
    inputs, clock = word_batches(8), ManualClock(0)
    (tmp_path / "first").mkdir()
    monkeypatch.chdir(tmp_path / "first")
    setup = make_setup(clock, "ckpt", running_count, inputs)
    run_first("ckpt", clock, setup, 5)
    moved = tmp_path / "moved-ckpt"
    (tmp_path / "first" / "ckpt").rename(moved)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    SINK.clear()

    ssc = StreamingContext.getOrCreate(
        str(moved), make_setup(clock, str(moved), running_count, inputs), clock=clock
    )
    assert ssc.recovered is not None and ssc.recovered.data_checkpoints
    assert all(ref.url.startswith(str(moved)) for ref in ssc.recovered.data_checkpoints)
    ssc.start()
    run_batches(ssc, clock, 6 * BATCH_MS, 8 * BATCH_MS)
    ssc.stop(stopSparkContext=False)
    after = [SINK[t] for t in sorted(SINK)]
    assert after == ref_running_counts(inputs)[len(inputs) - len(after) :]
