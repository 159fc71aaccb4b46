"""Milestone-1 operations against plain-Python references."""

from __future__ import annotations

import operator
from collections import defaultdict

import pytest

from dstream import Context, StorageLevel

WORDS = ["to be or not to be", "that is the question", "", "be quick"]


def test_parallelize_slices_evenly_and_keeps_order(sc: Context) -> None:
    rdd = sc.parallelize(range(10), 3)
    assert rdd.getNumPartitions() == 3
    assert rdd.glom().collect() == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    assert rdd.collect() == list(range(10))


def test_parallelize_defaults_to_default_parallelism(sc: Context) -> None:
    assert sc.parallelize([1, 2, 3]).getNumPartitions() == sc.defaultParallelism


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_parallelize_rejects_bad_num_slices(sc_inline: Context, bad: object) -> None:
    with pytest.raises(ValueError, match=r"numSlices must be a positive int, got"):
        sc_inline.parallelize([1], bad)  # type: ignore[arg-type]


def test_map_flatmap_filter_match_python(sc: Context) -> None:
    rdd = sc.parallelize(WORDS, 3)
    words = rdd.flatMap(str.split)
    assert words.collect() == [w for line in WORDS for w in line.split()]
    assert words.map(len).collect() == [len(w) for line in WORDS for w in line.split()]
    assert words.filter(lambda w: "e" in w).collect() == [
        w for line in WORDS for w in line.split() if "e" in w
    ]


def test_map_partitions_sees_each_partition_once(sc: Context) -> None:
    rdd = sc.parallelize(range(7), 3)
    assert rdd.mapPartitions(lambda it: [sum(it)]).collect() == [0 + 1, 2 + 3, 4 + 5 + 6]
    indexed = rdd.mapPartitionsWithIndex(lambda i, it: ((i, x) for x in it)).collect()
    assert indexed == [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (2, 5), (2, 6)]


def test_union_concatenates_partitions(sc: Context) -> None:
    a, b = sc.parallelize([1, 2], 2), sc.parallelize([3, 4, 5], 1)
    u = a.union(b)
    assert u.getNumPartitions() == 3
    assert u.glom().collect() == [[1], [2], [3, 4, 5]]
    assert sc.union([a, b, a]).collect() == [1, 2, 3, 4, 5, 1, 2]
    assert (a + b).collect() == [1, 2, 3, 4, 5]


def test_word_count_with_reduce_by_key(sc: Context) -> None:
    expected: dict[str, int] = defaultdict(int)
    for line in WORDS:
        for w in line.split():
            expected[w] += 1
    counts = sc.parallelize(WORDS, 3).flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(operator.add, 2)
    assert counts.getNumPartitions() == 2
    assert dict(counts.collect()) == expected
    assert len(counts.collect()) == len(expected)


def test_group_by_key_keeps_value_order_and_result_iterable(sc: Context) -> None:
    pairs = [(i % 3, i) for i in range(10)]
    grouped = sc.parallelize(pairs, 4).groupByKey(2).collect()
    expected: dict[int, list[int]] = defaultdict(list)
    for k, v in pairs:
        expected[k].append(v)
    assert {k: list(v) for k, v in grouped} == expected
    some = grouped[0][1]
    assert len(some) == len(expected[grouped[0][0]])
    assert some.data == list(some)


def test_map_values_preserves_keys(sc: Context) -> None:
    pairs = [("a", 1), ("b", 2), ("a", 3)]
    assert sc.parallelize(pairs, 2).mapValues(lambda v: v * 10).collect() == [(k, v * 10) for k, v in pairs]


def test_count_take_and_empty(sc: Context) -> None:
    rdd = sc.parallelize(range(100), 7)
    assert rdd.count() == 100
    assert rdd.take(5) == [0, 1, 2, 3, 4]
    assert rdd.take(0) == []
    assert rdd.take(1000) == list(range(100))
    assert rdd.filter(lambda x: x > 95).take(3) == [96, 97, 98]
    empty = sc.emptyRDD()
    assert empty.getNumPartitions() == 0
    assert empty.collect() == []
    assert empty.count() == 0
    assert empty.take(3) == []


def test_cache_stores_partitions_in_the_block_store(sc_inline: Context) -> None:
    rdd = sc_inline.parallelize(range(6), 2).map(lambda x: x + 1).cache()
    assert rdd.is_cached
    assert rdd.getStorageLevel() == StorageLevel.MEMORY_ONLY
    assert rdd.collect() == [1, 2, 3, 4, 5, 6]
    assert sc_inline._block_locations.read(rdd.id(), 0) == [1, 2, 3]
    assert sc_inline._block_locations.read(rdd.id(), 1) == [4, 5, 6]
    assert rdd.map(lambda x: x * 2).collect() == [2, 4, 6, 8, 10, 12]


def test_cached_partitions_are_not_recomputed(sc: Context) -> None:
    flaky = {"armed": False}

    def boom(x: int) -> int:
        if flaky["armed"]:
            raise AssertionError("recomputed")
        return x

    rdd = sc.parallelize(range(6), 2).map(boom).persist(StorageLevel.MEMORY_AND_DISK)
    assert rdd.collect() == list(range(6))
    flaky["armed"] = True  # the closure was pickled with armed=False for the first job only
    assert rdd.map(lambda x: x).collect() == list(range(6))
    rdd.unpersist()
    assert not rdd.is_cached
    with pytest.raises(Exception, match="recomputed"):
        rdd.map(boom).collect()
