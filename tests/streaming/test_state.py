"""updateStateByKey: semantics against a reference, checkpoint requirements, bounded lineage."""

from __future__ import annotations

import os

import pytest

from dstream.errors import DStreamValueError
from tests.streaming.conftest import WAIT_S, collect, run
from tests.streaming.reference import update_state

PAIRS = [[("a", 1), ("b", 2), ("a", 3)], [], [("b", 4), ("c", 5)], [("a", 6)], [], [("c", 1)]]


def running_sum(values, state):
    return sum(values) + (state or 0)


def expire_after_idle(values, state):
    # (total, idle batches); the key is dropped after two batches without values
    total, idle = state if state is not None else (0, 0)
    if values:
        return (total + sum(values), 0)
    return None if idle >= 1 else (total, idle + 1)


def as_sorted(d):
    return sorted(d.items(), key=repr)


@pytest.mark.parametrize("update", [running_sum, expire_after_idle])
def test_update_state_by_key_matches_reference(ssc, clock, tmp_path, update):
    ssc.checkpoint(str(tmp_path / "ckpt"))
    out = collect(ssc.queueStream(PAIRS).updateStateByKey(update))
    run(ssc, clock, len(PAIRS) + 2)
    batches = [*PAIRS, [], []]
    expected = update_state(batches, update, None)
    assert out == {(i + 1) * 1000: as_sorted(s) for i, s in enumerate(expected)}


@pytest.mark.parametrize("as_rdd", [False, True])
def test_update_state_by_key_initial_rdd_and_partitions(ssc, sc, clock, tmp_path, as_rdd):
    ssc.checkpoint(str(tmp_path / "ckpt"))
    initial = [("a", 100), ("z", 7)]
    stream = ssc.queueStream(PAIRS).updateStateByKey(
        running_sum, numPartitions=3, initialRDD=sc.parallelize(initial) if as_rdd else initial
    )
    out = collect(stream)
    parts = collect(stream.glom().count())
    run(ssc, clock, len(PAIRS))
    expected = update_state(PAIRS, running_sum, dict(initial))
    assert out == {(i + 1) * 1000: as_sorted(s) for i, s in enumerate(expected)}
    assert set(map(tuple, parts.values())) == {(3,)}


def test_stateful_stream_without_checkpoint_dir_fails_at_start(ssc):
    ssc.queueStream(PAIRS).updateStateByKey(running_sum).pprint()
    with pytest.raises(DStreamValueError, match="The checkpoint directory has not been set"):
        ssc.start()


def test_the_contexts_checkpoint_dir_alone_lets_a_stateful_stream_start(ssc, sc, clock, tmp_path):
    # PySpark requires the SparkContext's checkpoint directory; ssc.checkpoint(dir) is one way to set it.
    sc.setCheckpointDir(str(tmp_path / "sc-ckpt"))
    out = collect(ssc.queueStream(PAIRS).updateStateByKey(running_sum))
    run(ssc, clock, len(PAIRS))
    expected = update_state(PAIRS, running_sum, None)
    assert out == {(i + 1) * 1000: as_sorted(s) for i, s in enumerate(expected)}
    # The state was data-checkpointed (every 10 batches by default: none yet) under the Context's dir,
    # and no metadata checkpoint was written: only ssc.checkpoint turns recovery on.
    assert ssc.runtime.checkpointer is None


def test_the_contexts_checkpoint_dir_receives_data_checkpoints(ssc, sc, clock, tmp_path):
    sc.setCheckpointDir(str(tmp_path / "sc-ckpt"))
    stream = ssc.queueStream(PAIRS).updateStateByKey(running_sum)
    stream.checkpoint(2)
    out = collect(stream)
    run(ssc, clock, 4)
    assert out[4000] == as_sorted(update_state(PAIRS[:4], running_sum, None)[-1])
    written = sorted(p.name for p in (tmp_path / "sc-ckpt" / "rdd" / str(stream._id)).iterdir())
    assert written == ["2000", "4000"]


def test_inverse_window_without_checkpoint_dir_fails_at_start(ssc):
    ssc.queueStream(PAIRS).reduceByKeyAndWindow(lambda a, b: a + b, lambda a, b: a - b, 5, 1).pprint()
    with pytest.raises(ValueError, match="checkpoint directory has not been set"):
        ssc.start()


def test_checkpoint_interval_must_be_a_multiple_of_the_slide(ssc):
    stream = ssc.queueStream(PAIRS).window(2, 2)
    with pytest.raises(
        DStreamValueError, match=r"checkpoint interval 3 .*multiple of its slide duration \(2000"
    ):
        stream.checkpoint(3)
    with pytest.raises(DStreamValueError, match="slide"):
        stream.checkpoint(1)
    assert stream.checkpoint(4) is stream


def test_state_is_checkpointed_every_interval_and_lineage_stays_bounded(ssc, clock, tmp_path):
    ckpt = tmp_path / "ckpt"
    # Synchronous data checkpoints, so the cut is at the interval exactly (tests/recovery covers async).
    ssc.sparkContext._conf.set("dstream.checkpoint.async", "false")
    ssc.checkpoint(str(ckpt))
    state = ssc.queueStream([[("k", i)] for i in range(50)]).updateStateByKey(running_sum).checkpoint(3)
    depths: dict[int, int] = {}
    values = collect(state)

    def record_depth(t, rdd):
        depths[round(t.timestamp() * 1000)] = len(rdd.toDebugString().splitlines())

    state.foreachRDD(record_depth)
    run(ssc, clock, 50)
    assert values[50_000] == [("k", sum(range(50)))]
    assert ssc.wait_for_checkpoint(50_000, WAIT_S) and ssc.runtime.checkpointer.rdds.wait_idle(WAIT_S)
    written = sorted(int(name) for name in os.listdir(ckpt / "rdd" / str(state._id)))
    # Written every interval (the newest is there); old ones are deleted once no kept metadata
    # checkpoint references them.
    assert 48_000 in written and set(written) <= set(range(3000, 51_000, 3000))
    assert 3000 not in written
    assert all((ckpt / "rdd" / str(state._id) / str(t) / "_COMMITTED").exists() for t in written)
    # Linear growth would make late lineages ~10x longer than those of the first interval.
    early = max(depths[t] for t in range(1000, 7000, 1000))
    assert max(depths.values()) <= early


def test_default_checkpoint_interval_is_the_smallest_multiple_of_the_slide_over_10s(ssc, clock, tmp_path):
    ssc.checkpoint(str(tmp_path / "ckpt"))
    state = ssc.queueStream([[("k", 1)]] * 3).window(3, 3).updateStateByKey(running_sum)
    state.pprint()
    run(ssc, clock, 3)
    assert state._checkpoint_ms == 12_000
    assert state._remember_ms == 24_000
