"""RDD.localCheckpoint(): lineage truncated to the cached blocks, no files, a clear error on loss."""

from __future__ import annotations

import gc
import operator
from pathlib import Path

import pytest

from dstream import Context
from dstream.errors import DStreamError, DStreamStateError, JobFailedError
from dstream.rdd.storage import StorageLevel


def test_local_checkpoint_cuts_lineage_after_the_next_job_and_frees_shuffles(sc: Context) -> None:
    pairs = sc.parallelize([("a", 1), ("b", 2), ("a", 3), ("c", 4)], 3)
    counts = pairs.reduceByKey(operator.add, 2).mapValues(lambda v: v * 10)
    counts.localCheckpoint()
    assert counts.isLocallyCheckpointed() and not counts.isCheckpointed()
    assert counts.getStorageLevel() == StorageLevel.MEMORY_AND_DISK
    before = counts.toDebugString()
    assert b"ShuffledRDD" in before

    expected = sorted(counts.collect())
    assert expected == [("a", 40), ("b", 20), ("c", 40)]

    assert counts.isCheckpointed() and counts.isLocallyCheckpointed()
    assert counts.getCheckpointFile() is None, "a local checkpoint writes no files"
    after = counts.toDebugString()
    assert b"ShuffledRDD" not in after and b"LocalCheckpointRDD" in after
    assert len(after.splitlines()) == 1
    assert sorted(counts.collect()) == expected
    gc.collect()
    assert sc._map_outputs.shuffle_ids() == set(), "the cut lineage no longer holds the shuffle"


def test_locally_checkpointed_data_comes_from_the_blocks(sc: Context, tmp_path: Path) -> None:
    source = tmp_path / "input.txt"
    source.write_text("one\ntwo\nthree\n")
    lines = sc.textFile(str(source), 2).map(str.upper)
    lines.localCheckpoint()
    assert lines.collect() == ["ONE", "TWO", "THREE"]
    source.write_text("changed\n")  # recomputing from lineage would see this
    assert lines.collect() == ["ONE", "TWO", "THREE"]


def test_a_partial_job_still_materializes_every_partition(sc: Context) -> None:
    squares = sc.parallelize(range(12), 4).map(lambda x: x * x)
    squares.localCheckpoint()
    assert squares.take(1) == [0]  # computes partition 0 only
    assert squares.isCheckpointed()
    assert all(sc._block_locations.get(squares.id(), split) is not None for split in range(4))
    assert squares.collect() == [x * x for x in range(12)]


def test_a_lost_block_is_a_clear_error_not_a_silent_recompute(sc: Context) -> None:
    doubled = sc.parallelize(range(6), 2).map(lambda x: 2 * x)
    doubled.localCheckpoint()
    assert doubled.count() == 6
    doubled.unpersist()
    with pytest.raises(JobFailedError) as info:
        doubled.collect()
    assert isinstance(info.value.__cause__, DStreamError)
    assert "locally checkpointed RDD" in str(info.value.__cause__)


def test_an_existing_storage_level_is_kept(sc_inline: Context) -> None:
    rdd = sc_inline.parallelize([1, 2, 3]).map(str).persist(StorageLevel.MEMORY_ONLY)
    rdd.localCheckpoint()
    assert rdd.getStorageLevel() == StorageLevel.MEMORY_ONLY


def test_reliable_and_local_checkpoints_do_not_mix(sc_inline: Context, tmp_path: Path) -> None:
    sc_inline.setCheckpointDir(str(tmp_path))
    marked = sc_inline.parallelize([1, 2]).map(str)
    marked.checkpoint()
    with pytest.raises(DStreamStateError, match="reliable checkpointing"):
        marked.localCheckpoint()
    marked.collect()
    assert marked.getCheckpointFile() is not None
    marked.localCheckpoint()  # already checkpointed: a no-op, as in Spark
    assert not marked.isLocallyCheckpointed()
    assert marked.collect() == ["1", "2"]


def test_a_self_dependent_chain_stays_short(sc: Context) -> None:
    # The shape of a state stream: each step cogroups the previous state with new data.
    state = sc.parallelize([("k0", 0)], 2)
    expected: dict[str, int] = {"k0": 0}
    depth_lines = []
    for step in range(1, 31):
        batch = [(f"k{step % 5}", step), ("k0", 1)]
        for key, value in batch:
            expected[key] = expected.get(key, 0) + value
        grouped = state.cogroup(sc.parallelize(batch, 2), 2)
        state = grouped.mapValues(lambda ab: sum(ab[0]) + sum(ab[1]))
        state.localCheckpoint()
        assert dict(state.collect()) == expected
        depth_lines.append(len(state.toDebugString().splitlines()))
    assert depth_lines == [1] * 30
