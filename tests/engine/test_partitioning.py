"""portable_hash is process-independent; shuffles are deterministic; shuffle memory is released."""

from __future__ import annotations

import gc
import json
import operator
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dstream import Context, portable_hash
from dstream.rdd.partitioner import RangeBounds, range_bounds

ROOT = Path(__file__).resolve().parents[2]
KEYS = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**70,
    1.5,
    -0.0,
    "",
    "word",
    "ünïcödé",
    b"bytes",
    (),
    ("a", 1),
    ("a", ("b", None)),
    frozenset({"x", "y", 3}),
]
HASH_SCRIPT = (
    "import json, sys; from dstream import portable_hash; from tests.engine.test_partitioning import KEYS;"
    "print(json.dumps([portable_hash(k) for k in KEYS]))"
)


def hashes_in_subprocess(seed: str) -> list[int]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-c", HASH_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(out.stdout))


def test_portable_hash_is_the_same_in_processes_with_different_hash_seeds() -> None:
    here = [portable_hash(k) for k in KEYS]
    assert hashes_in_subprocess("1") == here
    assert hashes_in_subprocess("12345") == here


def test_portable_hash_agrees_with_equality() -> None:
    assert portable_hash(1) == portable_hash(1.0) == portable_hash(True)
    assert portable_hash(0) == portable_hash(False) == portable_hash(0.0)
    assert portable_hash(frozenset([1, 2, 3])) == portable_hash(frozenset([3, 2, 1]))
    assert portable_hash(("a", 1)) == portable_hash(("a", 1.0))
    assert portable_hash("a") != portable_hash(b"a")
    assert portable_hash(("a", "b")) != portable_hash(("b", "a"))


def test_range_bounds_split_a_sorted_sample_evenly() -> None:
    sample = list(range(100))
    assert range_bounds(sample, 4) == [25, 50, 75]
    assert range_bounds(sample, 1) == []
    assert range_bounds([], 3) == []
    part = RangeBounds([10, 20], lambda k: k, ascending=True)
    assert [part(k) for k in (5, 10, 11, 20, 21)] == [0, 0, 1, 1, 2]
    desc = RangeBounds([10, 20], lambda k: k, ascending=False)
    assert [desc(k) for k in (5, 11, 21)] == [2, 1, 0]


def word_pipeline(sc: Context) -> list[list[tuple[str, int]]]:
    lines = [f"w{i % 13} w{i % 7} x{i % 5}" for i in range(200)]
    rdd = sc.parallelize(lines, 5).flatMap(str.split).map(lambda w: (w, 1))
    return rdd.reduceByKey(operator.add, 4).groupByKey(3).mapValues(list).glom().collect()


def test_shuffle_output_is_identical_across_runs_and_masters() -> None:
    results = []
    for master in ("local-inline", "local[2]", "local[3]"):
        with Context(master) as sc:
            results.append(word_pipeline(sc))
            results.append(word_pipeline(sc))
    assert all(r == results[0] for r in results)


def test_shuffle_partition_contents_match_in_another_process() -> None:
    script = (
        "import json; from dstream import Context; from tests.engine.test_partitioning import word_pipeline;"
        "sc = Context('local[2]'); print(json.dumps(word_pipeline(sc))); sc.stop()"
    )
    env = {**os.environ, "PYTHONHASHSEED": "777"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    with Context("local[2]") as sc:
        mine = json.loads(json.dumps(word_pipeline(sc)))
    assert json.loads(out.stdout) == mine


def test_shuffle_outputs_are_freed_when_rdds_are_unreferenced(sc: Context) -> None:
    store = sc._map_outputs
    before = store.shuffle_ids()
    counts = sc.parallelize([("a", 1), ("b", 2), ("a", 3)], 2).reduceByKey(operator.add)
    grouped = counts.groupByKey(3)  # a different partition count: a second shuffle
    assert dict(grouped.mapValues(list).collect()) == {"a": [4], "b": [2]}
    assert len(store.shuffle_ids() - before) == 2
    del grouped
    gc.collect()
    assert len(store.shuffle_ids() - before) == 1, "the groupByKey shuffle went with its RDD"
    assert counts.collect()  # the remaining one still serves jobs
    del counts
    gc.collect()
    assert store.shuffle_ids() == before


def test_cached_blocks_are_freed_when_rdds_are_unreferenced(sc: Context) -> None:
    blocks = sc._block_locations
    source = sc.parallelize(range(10), 2)
    cached = source.map(lambda x: x * 2).cache()
    assert cached.count() == 10
    assert {source.id(), cached.id()} <= blocks.rdd_ids()
    cached_id = cached.id()
    del cached
    gc.collect()
    assert cached_id not in blocks.rdd_ids()
    assert source.id() in blocks.rdd_ids()


def test_many_batches_do_not_accumulate_state(sc: Context) -> None:
    """A streaming-like loop: each batch builds, shuffles and drops RDDs; stores stay bounded."""
    for batch in range(30):
        rdd = sc._rdd_from_partitions([[(batch % 3, 1)] * 5, [(1, 1)] * 5]).cache()
        assert dict(rdd.reduceByKey(operator.add).collect())[1] >= 5
        del rdd
    gc.collect()
    assert sc._map_outputs.shuffle_ids() == set()
    assert sc._block_locations.rdd_ids() == set()


@pytest.mark.parametrize("n", [1, 2, 7])
def test_hash_partitioning_uses_portable_hash(sc: Context, n: int) -> None:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", ("t", 1), None, 3.5]
    parts = sc.parallelize([(w, 0) for w in words], 2).partitionBy(n).glom().collect()
    for index, part in enumerate(parts):
        assert all(portable_hash(k) % n == index for k, _ in part)
