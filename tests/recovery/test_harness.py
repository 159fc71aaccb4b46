"""Stop/restart in-process with a ManualClock (Spark's CheckpointSuite harness).

Run N batches, stop after the completion checkpoint of batch N is durable, recover with getOrCreate
(setup is not called), run to the end. The output before the restart must equal the expected prefix
and the output after it the expected suffix (which allows a re-run last batch). Expected outputs come
from plain-Python references.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from dstream.clock import ManualClock
from dstream.streaming import StreamingContext
from tests.recovery.support import (
    BATCH_MS,
    LINEAGE,
    SINK,
    WAIT_S,
    ReplayInputDStream,
    add,
    new_context,
    record,
    record_lineage,
    run_batches,
    running_count,
    sub,
)

Op = Callable[[Any], Any]


def check_operation(
    path: str,
    op: Op,
    inputs: list[list[Any]],
    expected: list[list[Any]],
    n_before: int,
    storage_options: dict[str, Any] | None = None,
) -> StreamingContext:
    """Returns the recovered (stopped) context for further assertions."""
    clock = ManualClock(0)
    calls = []

    def setup() -> StreamingContext:
        calls.append(1)
        ssc = new_context(clock, path, storage_options)
        op(ReplayInputDStream(ssc, inputs)).foreachRDD(record)
        return ssc

    first = StreamingContext.getOrCreate(path, setup, clock=clock, storage_options=storage_options)
    first.start()
    run_batches(first, clock, BATCH_MS, n_before * BATCH_MS)
    assert first.wait_for_checkpoint(n_before * BATCH_MS, WAIT_S)
    first.stop(stopSparkContext=False)
    before = [SINK[t] for t in sorted(SINK)]
    SINK.clear()

    second = StreamingContext.getOrCreate(path, setup, clock=clock, storage_options=storage_options)
    assert calls == [1], "setup must not be called on recovery"
    second.start()
    run_batches(second, clock, (n_before + 1) * BATCH_MS, len(expected) * BATCH_MS)
    second.stop(stopSparkContext=False)
    after = [SINK[t] for t in sorted(SINK)]
    assert before == expected[:n_before]
    assert len(after) >= len(expected) - n_before
    assert after == expected[len(expected) - len(after) :]
    return second


def word_batches(n: int) -> list[list[str]]:
    return [["a"] * (i % 3 + 1) + ["b"] * (i % 2) for i in range(n)]


def ref_running_counts(inputs: list[list[str]]) -> list[list[tuple[str, int]]]:
    total: Counter[str] = Counter()
    out = []
    for batch in inputs:
        total.update(batch)
        out.append(sorted(total.items(), key=repr))
    return out


def ref_window_counts(inputs: list[list[str]], window: int) -> list[list[tuple[str, int]]]:
    out = []
    for i in range(len(inputs)):
        c = Counter(w for batch in inputs[max(0, i - window + 1) : i + 1] for w in batch)
        out.append(sorted(((k, v) for k, v in c.items() if v > 0), key=repr))
    return out


def test_map_and_reduce_by_key_recover(tmp_path: Any) -> None:
    inputs = word_batches(6)
    expected = [sorted(Counter(b).items(), key=repr) for b in inputs]
    check_operation(
        str(tmp_path / "ckpt"), lambda s: s.map(lambda w: (w, 1)).reduceByKey(add), inputs, expected, 3
    )


def test_update_state_by_key_recovers_from_data_checkpoint(tmp_path: Any) -> None:
    inputs = word_batches(10)

    def op(s: Any) -> Any:
        return s.map(lambda w: (w, 1)).updateStateByKey(running_count).checkpoint(2)

    ssc = check_operation(str(tmp_path / "ckpt"), op, inputs, ref_running_counts(inputs), 7)
    assert ssc.recovered.data_checkpoints, "the recovered state must come from a data checkpoint"
    assert all(ref.batch_ms % 2000 == 0 for ref in ssc.recovered.data_checkpoints)


def test_reduce_by_key_and_window_with_inverse_recovers(tmp_path: Any) -> None:
    inputs = word_batches(12)
    window_s = 5

    def op(s: Any) -> Any:
        pairs = s.map(lambda w: (w, 1))
        return pairs.reduceByKeyAndWindow(add, sub, window_s, 1, 2, lambda kv: kv[1] > 0).checkpoint(2)

    ssc = check_operation(str(tmp_path / "ckpt"), op, inputs, ref_window_counts(inputs, window_s), 7)
    assert ssc.recovered.data_checkpoints


def test_update_state_by_key_recovers_on_s3(s3_moto: Any) -> None:
    inputs = word_batches(4)

    def op(s: Any) -> Any:
        return s.map(lambda w: (w, 1)).updateStateByKey(running_count).checkpoint(2)

    ssc = check_operation(
        s3_moto.url, op, inputs, ref_running_counts(inputs), 3, storage_options=s3_moto.storage_options
    )
    assert ssc.recovered.data_checkpoints


@pytest.mark.parametrize("mode", ["true", "false"])
def test_lineage_stays_bounded_in_a_long_run(tmp_path: Any, mode: str) -> None:
    """60 batches, checkpoint every 2: the lineage of the last batches is no longer than that of the
    first ones (each batch waits for its data checkpoints, as a store faster than the batch would)."""
    n = 60
    clock = ManualClock(0)
    ssc = new_context(clock, str(tmp_path / "ckpt"))
    ssc.sparkContext._conf.set("dstream.checkpoint.async", mode)
    state = ReplayInputDStream(ssc, word_batches(n)).map(lambda w: (w, 1)).updateStateByKey(running_count)
    state.checkpoint(2).foreachRDD(record_lineage)
    ssc.start()
    run_batches(ssc, clock, BATCH_MS, n * BATCH_MS)
    ssc.stop(stopSparkContext=False)
    assert [SINK[t] for t in sorted(SINK)] == ref_running_counts(word_batches(n))
    early = max(LINEAGE[t] for t in range(BATCH_MS, 11 * BATCH_MS, BATCH_MS))
    late = max(LINEAGE[t] for t in range((n - 20) * BATCH_MS, (n + 1) * BATCH_MS, BATCH_MS))
    assert late <= early, f"lineage grew from {early} to {late} RDDs"
    assert LINEAGE[n * BATCH_MS] < LINEAGE[BATCH_MS] * n / 4  # an uncut chain grows with n


def test_update_state_by_key_recovers_on_every_storage(storage: Any) -> None:
    inputs = word_batches(4)

    def op(s: Any) -> Any:
        return s.map(lambda w: (w, 1)).updateStateByKey(running_count).checkpoint(2)

    ssc = check_operation(
        storage.url, op, inputs, ref_running_counts(inputs), 3, storage_options=storage.storage_options
    )
    assert [r.batch_ms for r in ssc.recovered.data_checkpoints] == [2000]
