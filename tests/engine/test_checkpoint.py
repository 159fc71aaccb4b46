"""RDD checkpointing: files under the checkpoint dir, lineage cut, data re-read from the files."""

from __future__ import annotations

import gc
import operator
import threading
import uuid
from pathlib import Path

import pytest

from checkpoint import rdd_data
from checkpoint.errors import CheckpointError, CheckpointNotCommittedError
from dstream import Context
from dstream.errors import DStreamError, JobFailedError


def test_checkpoint_needs_a_directory(sc: Context) -> None:
    with pytest.raises(DStreamError, match="Checkpoint directory has not been set"):
        sc.parallelize([1]).checkpoint()


def test_checkpoint_writes_parts_cuts_lineage_and_frees_shuffles(sc: Context, tmp_path: Path) -> None:
    sc.setCheckpointDir(str(tmp_path))
    pairs = sc.parallelize([("a", 1), ("b", 2), ("a", 3), ("c", 4)], 3)
    counts = pairs.reduceByKey(operator.add, 2).mapValues(lambda v: v * 10)
    counts.checkpoint()
    before = counts.toDebugString()
    assert b"ShuffledRDD" in before and not counts.isCheckpointed()
    expected = counts.collect()
    assert sorted(expected) == [("a", 40), ("b", 20), ("c", 40)]

    assert counts.isCheckpointed()
    ckpt = counts.getCheckpointFile()
    assert ckpt == f"{tmp_path}/rdd/{sc._run_uuid}/rdd-{counts.id()}"
    assert rdd_data.committed_partitions(ckpt) == 2
    after = counts.toDebugString()
    assert len(after.splitlines()) < len(before.splitlines())
    assert b"ShuffledRDD" not in after and b"ReliableCheckpointRDD" in after
    assert counts.collect() == expected
    gc.collect()
    assert sc._map_outputs.shuffle_ids() == set(), "the cut lineage no longer holds the shuffle"


def test_checkpointed_data_comes_from_the_files(sc: Context, tmp_path: Path) -> None:
    source = tmp_path / "input.txt"
    source.write_text("one\ntwo\nthree\n")
    sc.setCheckpointDir(str(tmp_path / "ckpt"))
    lines = sc.textFile(str(source), 2).map(str.upper)
    lines.checkpoint()
    assert lines.collect() == ["ONE", "TWO", "THREE"]
    source.write_text("changed\n")  # recomputing from lineage would see this
    assert lines.collect() == ["ONE", "TWO", "THREE"]
    ckpt = lines.getCheckpointFile()
    assert ckpt is not None
    (Path(ckpt) / "part-00001").write_bytes(b"garbage")
    with pytest.raises(JobFailedError) as info:
        lines.collect()
    assert isinstance(info.value.__cause__, CheckpointError)


def test_marked_ancestor_is_checkpointed_by_a_job_on_a_descendant(sc: Context, tmp_path: Path) -> None:
    sc.setCheckpointDir(str(tmp_path))
    base = sc.parallelize(range(6), 2).map(lambda x: (x % 2, x))
    base.checkpoint()
    total = base.reduceByKey(operator.add)
    assert dict(total.collect()) == {0: 6, 1: 9}
    assert base.isCheckpointed()
    assert not total.isCheckpointed()


def test_explicit_write_then_cut_on_a_memory_url(sc: Context) -> None:
    """The streaming layer's path: _write_checkpoint (maybe in another thread), then _cut_lineage."""
    dir_url = f"memory://engine-ckpt-{uuid.uuid4().hex}/rdd-x"
    rdd = sc.parallelize(range(20), 4).map(lambda x: (x % 3, x)).groupByKey(2).mapValues(sorted)
    expected = rdd.collect()
    with pytest.raises(CheckpointNotCommittedError):
        rdd._cut_lineage(dir_url)
    rdd._write_checkpoint(dir_url, storage_options={})
    assert rdd_data.is_committed(dir_url)
    assert not rdd.isCheckpointed()  # writing does not cut
    rdd._cut_lineage(dir_url, storage_options={})
    assert rdd.isCheckpointed() and rdd.getCheckpointFile() == dir_url
    assert rdd.collect() == expected
    assert sc._checkpoint_rdd(dir_url, {}).collect() == expected
    rdd_data.delete(dir_url)


def test_cut_during_concurrent_jobs_gives_consistent_results(tmp_path: Path) -> None:
    with Context("local[2]") as sc:
        rdd = sc.parallelize([(i % 5, i) for i in range(200)], 4).reduceByKey(operator.add, 3)
        expected = rdd.collect()
        dir_url = str(tmp_path / "c")
        rdd._write_checkpoint(dir_url)
        results: list[object] = []
        errors: list[BaseException] = []
        started = threading.Event()

        def worker() -> None:
            try:
                for i in range(30):
                    results.append(rdd.map(lambda kv: kv).collect())
                    if i == 2:
                        started.set()
            except BaseException as exc:
                errors.append(exc)
                started.set()

        t = threading.Thread(target=worker)
        t.start()
        assert started.wait(timeout=30)
        rdd._cut_lineage(dir_url)
        t.join(timeout=60)
        assert not t.is_alive()
        assert errors == []
        assert len(results) == 30 and all(r == expected for r in results)
        assert rdd.isCheckpointed()


def test_cut_refuses_a_directory_with_a_different_partition_count(sc: Context) -> None:
    dir_url = f"memory://engine-ckpt-{uuid.uuid4().hex}/rdd"
    sc.parallelize(range(4), 2)._write_checkpoint(dir_url, {})
    with pytest.raises(DStreamError, match="holds 2 partitions"):
        sc.parallelize(range(4), 3)._cut_lineage(dir_url, {})
    rdd_data.delete(dir_url)
