"""Whole-RDD transformations and actions against plain-Python references."""

from __future__ import annotations

import operator
from collections import Counter

import pytest

from dstream import Context
from dstream.errors import JobFailedError

DATA = [5, 3, 9, 1, 3, 7, 2, 8, 3, 0]


def test_glom_and_coalesce_merge_adjacent_partitions(sc: Context) -> None:
    rdd = sc.parallelize(range(12), 6)
    assert rdd.glom().collect() == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]
    merged = rdd.coalesce(3)
    assert merged.getNumPartitions() == 3
    assert merged.glom().collect() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert b"ShuffledRDD" not in merged.toDebugString()
    assert rdd.coalesce(10).getNumPartitions() == 6  # no shuffle: cannot grow
    assert rdd.coalesce(1).collect() == list(range(12))


def test_repartition_shuffles_to_exact_count_and_balances(sc: Context) -> None:
    rdd = sc.parallelize(range(100), 2).repartition(5)
    assert rdd.getNumPartitions() == 5
    assert b"ShuffledRDD" in rdd.toDebugString()
    sizes = [len(p) for p in rdd.glom().collect()]
    assert sum(sizes) == 100 and max(sizes) - min(sizes) <= 2
    assert sorted(rdd.collect()) == list(range(100))
    assert sc.parallelize(range(10), 5).coalesce(8, shuffle=True).getNumPartitions() == 8


@pytest.mark.parametrize("bad", [0, -2, None, 2.0])
def test_coalesce_rejects_bad_counts(sc_inline: Context, bad: object) -> None:
    with pytest.raises(ValueError, match="numPartitions must be a positive int"):
        sc_inline.parallelize([1]).coalesce(bad)  # type: ignore[arg-type]


def test_cartesian(sc: Context) -> None:
    a, b = sc.parallelize([1, 2, 3], 2), sc.parallelize("xy", 2)
    out = a.cartesian(b)
    assert out.getNumPartitions() == 4
    assert sorted(out.collect()) == sorted((x, y) for x in [1, 2, 3] for y in "xy")


def test_distinct_and_intersection(sc: Context) -> None:
    assert sorted(sc.parallelize(DATA, 3).distinct().collect()) == sorted(set(DATA))
    assert sc.parallelize(DATA, 3).distinct(2).getNumPartitions() == 2
    other = [3, 4, 5, 5]
    assert sorted(sc.parallelize(DATA, 2).intersection(sc.parallelize(other, 2)).collect()) == sorted(
        set(DATA) & set(other)
    )


def test_zip_and_zip_with_index(sc: Context) -> None:
    a = sc.parallelize(range(6), 3)
    assert a.zip(a.map(str)).collect() == [(i, str(i)) for i in range(6)]
    assert sc.parallelize("abcde", 3).zipWithIndex().collect() == [(c, i) for i, c in enumerate("abcde")]
    ids = sc.parallelize("abcde", 2).zipWithUniqueId().collect()
    assert len({i for _, i in ids}) == 5
    with pytest.raises(ValueError, match="same number of partitions"):
        a.zip(sc.parallelize(range(6), 2))
    with pytest.raises(JobFailedError, match="same number of elements"):
        a.zip(a.filter(lambda x: x != 4)).collect()


def test_key_by_group_by_sort_by(sc: Context) -> None:
    rdd = sc.parallelize(DATA, 3)
    assert rdd.keyBy(lambda x: x % 2).collect() == [(x % 2, x) for x in DATA]
    groups = {k: sorted(v) for k, v in rdd.groupBy(lambda x: x % 3).collect()}
    assert groups == {r: sorted(x for x in DATA if x % 3 == r) for r in range(3)}
    assert rdd.sortBy(lambda x: x).collect() == sorted(DATA)
    assert rdd.sortBy(lambda x: -x, numPartitions=2).collect() == sorted(DATA, reverse=True)
    assert rdd.sortBy(lambda x: x, ascending=False).collect() == sorted(DATA, reverse=True)


def test_sample_is_deterministic_for_a_seed(sc: Context) -> None:
    rdd = sc.parallelize(range(1000), 4)
    s1 = rdd.sample(False, 0.1, 42).collect()
    assert s1 == rdd.sample(False, 0.1, 42).collect()
    assert 40 < len(s1) < 200 and set(s1) <= set(range(1000))
    with_rep = rdd.sample(True, 2.0, 7).collect()
    assert with_rep == rdd.sample(True, 2.0, 7).collect()
    assert 1500 < len(with_rep) < 2500
    with pytest.raises(ValueError, match="fraction"):
        rdd.sample(False, 1.5)


def test_actions_match_python(sc: Context) -> None:
    rdd = sc.parallelize(DATA, 3)
    assert rdd.reduce(operator.add) == sum(DATA)
    assert rdd.fold(0, operator.add) == sum(DATA)
    assert rdd.aggregate(
        (0, 0), lambda a, x: (a[0] + x, a[1] + 1), lambda a, b: (a[0] + b[0], a[1] + b[1])
    ) == (
        sum(DATA),
        len(DATA),
    )
    assert rdd.sum() == sum(DATA)
    assert rdd.max() == max(DATA) and rdd.min() == min(DATA)
    assert rdd.max(key=lambda x: -x) == min(DATA)
    assert rdd.mean() == pytest.approx(sum(DATA) / len(DATA))
    assert rdd.top(3) == sorted(DATA, reverse=True)[:3]
    assert rdd.top(2, key=lambda x: -x) == sorted(DATA)[:2]
    assert rdd.takeOrdered(4) == sorted(DATA)[:4]
    assert rdd.takeOrdered(2, key=lambda x: -x) == sorted(DATA, reverse=True)[:2]
    assert rdd.first() == DATA[0]
    assert rdd.countByValue() == Counter(DATA)


def test_fold_applies_zero_per_partition_and_once_on_driver(sc: Context) -> None:
    assert sc.parallelize([1, 2, 3, 4], 2).fold(10, operator.add) == 10 + 10 + 10 + 1 + 2 + 3 + 4


def test_foreach_and_foreach_partition_run_in_tasks(sc: Context, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "seen"
    out.mkdir()

    def record(x: int) -> None:
        (out / f"x{x}").write_text("1")

    sc.parallelize(range(5), 2).foreach(record)
    assert sorted(p.name for p in out.iterdir()) == [f"x{i}" for i in range(5)]

    def record_part(it) -> None:  # type: ignore[no-untyped-def]
        items = list(it)
        (out / f"p{len(items)}-{sum(items)}").write_text("1")

    sc.parallelize(range(5), 2).foreachPartition(record_part)
    assert {p.name for p in out.iterdir() if p.name.startswith("p")} == {"p2-1", "p3-9"}


def test_run_job_on_some_partitions(sc: Context) -> None:
    rdd = sc.parallelize(range(9), 3)
    assert sc.runJob(rdd, lambda it: [sum(it)], [0, 2]) == [0 + 1 + 2, 6 + 7 + 8]
    with pytest.raises(ValueError, match="do not exist"):
        sc.runJob(rdd, lambda it: it, [3])


def test_names_ids_and_context(sc: Context) -> None:
    a = sc.parallelize([1])
    b = a.map(lambda x: x)
    assert a.id() != b.id()
    assert a.context is sc and a.ctx is sc
    assert a.name() is None
    assert a.setName("numbers") is a and a.name() == "numbers"
    assert b"numbers" in b.toDebugString()


def test_pipelined_maps_are_one_rdd_in_the_lineage(sc: Context) -> None:
    rdd = sc.parallelize(range(4), 2).map(lambda x: x + 1).filter(lambda x: x % 2).map(lambda x: x * 10)
    assert rdd.toDebugString().count(b"PythonRDD") == 1
    assert rdd.collect() == [10, 30]


def test_long_lineages_pickle_and_run(sc: Context) -> None:
    rdd = sc.parallelize(range(10), 2)
    for _ in range(1000):  # one pipelined node with 1000 functions
        rdd = rdd.map(lambda x: x + 1)
    assert rdd.collect() == [x + 1000 for x in range(10)]
    state = sc.parallelize([(k, 0) for k in range(3)], 2).partitionBy(2)
    for i in range(100):  # a stateful stream's shape: co-partitioned, so all narrow
        state = state.union(sc.parallelize([(i % 3, 1)], 1).partitionBy(2)).reduceByKey(operator.add)
    assert dict(state.collect()) == {k: sum(1 for i in range(100) if i % 3 == k) for k in range(3)}
