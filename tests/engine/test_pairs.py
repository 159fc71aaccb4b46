"""Pair-RDD operations against plain-Python references."""

from __future__ import annotations

import operator
import random
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dstream import Context, ResultIterable
from dstream.errors import JobFailedError
from dstream.rdd.partitioner import Partitioner, portable_hash
from dstream.rdd.shuffle import _CHUNK_RECORDS as COMBINE_CHUNK
from dstream.rdd.shuffle import Aggregator, combine, identity

LEFT = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("d", 5), ("a", 6)]
RIGHT = [("a", "x"), ("c", "y"), ("c", "z"), ("e", "w")]


def grouped(pairs: list[tuple[Any, Any]]) -> dict[Any, list[Any]]:
    out: dict[Any, list[Any]] = defaultdict(list)
    for k, v in pairs:
        out[k].append(v)
    return dict(out)


def ref_join(left: list[Any], right: list[Any], keep_left: bool, keep_right: bool) -> list[Any]:
    lg, rg = grouped(left), grouped(right)
    out = []
    for k in set(lg) | set(rg):
        vs = lg.get(k, [None] if keep_right and k in rg else [])
        ws = rg.get(k, [None] if keep_left and k in lg else [])
        out.extend((k, (v, w)) for v in vs for w in ws)
    return sorted(out, key=repr)


def test_combine_aggregate_fold_by_key(sc: Context) -> None:
    rdd = sc.parallelize(LEFT, 3)
    sums = {k: sum(vs) for k, vs in grouped(LEFT).items()}
    assert dict(rdd.reduceByKey(operator.add).collect()) == sums
    assert dict(sc.parallelize(LEFT, 1).foldByKey(0, operator.add).collect()) == sums
    combined = rdd.combineByKey(lambda v: [v], lambda c, v: [*c, v], lambda a, b: a + b).collect()
    assert {k: sorted(v) for k, v in combined} == {k: sorted(v) for k, v in grouped(LEFT).items()}
    agg = rdd.aggregateByKey(
        (0, 0), lambda acc, v: (acc[0] + v, acc[1] + 1), lambda a, b: (a[0] + b[0], a[1] + b[1])
    )
    assert dict(agg.collect()) == {k: (sum(vs), len(vs)) for k, vs in grouped(LEFT).items()}


def test_fold_by_key_zero_counts_once_per_key_and_partition(sc_inline: Context) -> None:
    rdd = sc_inline.parallelize(LEFT, 2)  # partitions: LEFT[:3], LEFT[3:]
    expected: dict[str, int] = defaultdict(int)
    for part in (LEFT[:3], LEFT[3:]):
        for k in {k for k, _ in part}:
            expected[k] += 10
    for k, v in LEFT:
        expected[k] += v
    assert dict(rdd.foldByKey(10, operator.add).collect()) == expected


def test_aggregate_by_key_copies_mutable_zero(sc: Context) -> None:
    # If the zero list were shared, every key would see every value.
    mutating = sc.parallelize(LEFT, 2).aggregateByKey(
        [], lambda acc, v: (acc.append(v), acc)[1], operator.add
    )
    assert {k: sorted(v) for k, v in mutating.collect()} == {k: sorted(v) for k, v in grouped(LEFT).items()}


def test_group_by_key_values_are_result_iterables(sc: Context) -> None:
    out = sc.parallelize(LEFT, 3).groupByKey().collect()
    assert all(isinstance(v, ResultIterable) for _, v in out)
    assert {k: list(v) for k, v in out} == grouped(LEFT)
    assert {k: len(v) for k, v in out} == {k: len(v) for k, v in grouped(LEFT).items()}


def test_keys_values_flat_map_values(sc: Context) -> None:
    rdd = sc.parallelize(LEFT, 2)
    assert rdd.keys().collect() == [k for k, _ in LEFT]
    assert rdd.values().collect() == [v for _, v in LEFT]
    assert rdd.flatMapValues(lambda v: range(v % 3)).collect() == [
        (k, i) for k, v in LEFT for i in range(v % 3)
    ]


def test_count_by_key_and_value_return_defaultdicts(sc: Context) -> None:
    rdd = sc.parallelize(LEFT, 3)
    by_key = rdd.countByKey()
    assert isinstance(by_key, defaultdict) and by_key.default_factory is int
    assert by_key == {k: len(v) for k, v in grouped(LEFT).items()}
    assert by_key["zzz"] == 0
    by_value = sc.parallelize([1, 2, 1, 3, 1], 2).countByValue()
    assert isinstance(by_value, defaultdict)
    assert by_value == {1: 3, 2: 1, 3: 1}


@pytest.mark.parametrize(
    ("method", "keep_left", "keep_right"),
    [
        ("join", False, False),
        ("leftOuterJoin", True, False),
        ("rightOuterJoin", False, True),
        ("fullOuterJoin", True, True),
    ],
)
def test_joins_match_reference(sc: Context, method: str, keep_left: bool, keep_right: bool) -> None:
    left, right = sc.parallelize(LEFT, 2), sc.parallelize(RIGHT, 3)
    out = getattr(left, method)(right).collect()
    assert sorted(out, key=repr) == ref_join(LEFT, RIGHT, keep_left, keep_right)
    assert getattr(left, method)(right, 4).getNumPartitions() == 4


def test_join_default_partitions_is_sum_of_inputs_like_pyspark(sc: Context) -> None:
    assert sc.parallelize(LEFT, 2).join(sc.parallelize(RIGHT, 3)).getNumPartitions() == 5


def test_cogroup_and_group_with(sc: Context) -> None:
    a, b, c = sc.parallelize(LEFT, 2), sc.parallelize(RIGHT, 1), sc.parallelize([("a", None)], 1)
    out = {k: tuple(list(x) for x in v) for k, v in a.cogroup(b).collect()}
    lg, rg = grouped(LEFT), grouped(RIGHT)
    assert out == {k: (lg.get(k, []), rg.get(k, [])) for k in set(lg) | set(rg)}
    three = {k: tuple(len(x) for x in v) for k, v in a.groupWith(b, c).collect()}
    assert three["a"] == (3, 1, 1)
    assert three["e"] == (0, 1, 0)


def test_subtract_and_subtract_by_key(sc: Context) -> None:
    a = sc.parallelize(LEFT, 2)
    assert sorted(a.subtractByKey(sc.parallelize(RIGHT, 2)).collect()) == sorted(
        (k, v) for k, v in LEFT if k not in dict(RIGHT)
    )
    xs, ys = [1, 2, 2, 3, 4, 4, 5], [2, 4, 6]
    assert sorted(sc.parallelize(xs, 3).subtract(sc.parallelize(ys, 2)).collect()) == sorted(
        x for x in xs if x not in ys
    )


def test_partition_by_places_keys_by_portable_hash(sc: Context) -> None:
    rdd = sc.parallelize([(k, i) for i, k in enumerate("abcdefghij")], 3).partitionBy(4)
    assert rdd.getNumPartitions() == 4
    assert rdd.partitioner == Partitioner(4, portable_hash)
    for index, part in enumerate(rdd.glom().collect()):
        assert all(portable_hash(k) % 4 == index for k, _ in part)
    assert rdd.partitionBy(4) is rdd  # already partitioned that way: no new shuffle


def test_custom_partition_func(sc: Context) -> None:
    rdd = sc.parallelize([(i, i) for i in range(10)], 2).partitionBy(3, lambda k: k // 4)
    assert rdd.glom().collect() == [[(i, i) for i in range(10) if (i // 4) % 3 == p] for p in range(3)]


def test_aggregation_on_copartitioned_input_skips_the_shuffle(sc: Context) -> None:
    parted = sc.parallelize([(i % 5, i) for i in range(20)], 2).partitionBy(3)
    summed = parted.reduceByKey(operator.add, 3)
    assert b"ShuffledRDD" in summed.toDebugString()
    assert summed.toDebugString().count(b"ShuffledRDD") == 1  # only partitionBy's
    assert dict(summed.collect()) == {k: sum(i for i in range(20) if i % 5 == k) for k in range(5)}


def test_sort_by_key_total_order(sc: Context) -> None:
    import random

    rng = random.Random(3)
    pairs = [(rng.randrange(1000), i) for i in range(300)]
    asc = sc.parallelize(pairs, 4).sortByKey(numPartitions=3)
    assert asc.getNumPartitions() == 3
    assert [k for k, _ in asc.collect()] == sorted(k for k, _ in pairs)
    parts = asc.glom().collect()
    assert all(parts[i] and parts[i + 1] and parts[i][-1][0] <= parts[i + 1][0][0] for i in range(2))
    desc = sc.parallelize(pairs, 4).sortByKey(ascending=False, numPartitions=3)
    assert [k for k, _ in desc.collect()] == sorted((k for k, _ in pairs), reverse=True)
    by_mod = sc.parallelize(pairs, 4).sortByKey(True, 2, keyfunc=lambda k: k % 7).keys().collect()
    assert [k % 7 for k in by_mod] == sorted(k % 7 for k, _ in pairs)
    one = sc.parallelize(pairs, 4).sortByKey(numPartitions=1)
    assert one.getNumPartitions() == 1 and [k for k, _ in one.collect()] == sorted(k for k, _ in pairs)


def test_sort_by_key_on_empty_rdd(sc: Context) -> None:
    assert sc.parallelize([], 2).sortByKey().collect() == []


def test_collect_as_map_and_lookup(sc: Context) -> None:
    rdd = sc.parallelize(LEFT, 2)
    assert rdd.collectAsMap() == dict(LEFT)
    assert rdd.lookup("a") == [1, 3, 6]
    assert rdd.reduceByKeyLocally(operator.add) == {k: sum(v) for k, v in grouped(LEFT).items()}


def test_copartitioned_union_and_cogroup_need_no_new_shuffle(sc: Context) -> None:
    state = sc.parallelize([(k, k * 10) for k in range(8)], 2).partitionBy(3)
    batch = sc.parallelize([(k, 1) for k in range(4, 12)], 2).partitionBy(3)
    union = state.union(batch)
    assert union.getNumPartitions() == 3 and union.partitioner == state.partitioner
    for index, part in enumerate(union.glom().collect()):
        assert all(portable_hash(k) % 3 == index for k, _ in part)
    joined = state.fullOuterJoin(batch)
    assert joined.toDebugString().count(b"ShuffledRDD") == 2  # only the two partitionBy's
    expected = ref_join([(k, k * 10) for k in range(8)], [(k, 1) for k in range(4, 12)], True, True)
    assert sorted(joined.collect(), key=repr) == expected
    assert sc.union([state, batch]).getNumPartitions() == 3
    assert state.union(sc.parallelize([(1, 1)], 1)).getNumPartitions() == 4


class AddRaisesKeyError:
    def __add__(self, other: object) -> object:
        raise KeyError("from __add__")

    __radd__ = __add__


def _lookup(a: int, b: int) -> int:
    return {1: 1, 2: 2}[a + b]


@pytest.mark.parametrize(
    ("values", "func", "message"),
    [([1, 2], _lookup, "KeyError: 3"), ([AddRaisesKeyError()] * 2, operator.add, "from __add__")],
)
def test_a_key_error_raised_by_the_reduce_function_fails_the_job(
    sc: Context, values: list[Any], func: Any, message: str
) -> None:
    """The combine loop treats a KeyError from its own lookup as a new key; the user's must go up."""
    with pytest.raises(JobFailedError, match=message):
        sc.parallelize([("k", v) for v in values], 1).reduceByKey(func).collect()


def _merge_raising_at_3(c: list[int], v: int) -> list[int]:
    if v == 3:
        raise KeyError("merge saw 3")
    return [*c, v]


def _keep_first_raising_at_3(a: int, b: int) -> int:
    if b == 3:
        raise KeyError("merge saw 3")
    return a


# After a first chunk of mostly repeated keys, combine switches to the loop that catches KeyError;
# a record deep in the input reaches that loop, one near the start the dict.get loop.
@pytest.mark.parametrize("position", [1, 3 * COMBINE_CHUNK + 7])
@pytest.mark.parametrize(
    ("agg", "raising", "message"),
    [
        (Aggregator(identity, operator.add, operator.add), AddRaisesKeyError(), "from __add__"),
        (Aggregator(identity, _keep_first_raising_at_3, operator.add), 3, "merge saw 3"),
        (Aggregator(lambda v: [v], _merge_raising_at_3, operator.add), 3, "merge saw 3"),
    ],
    ids=["add", "reduce", "combiner"],
)
def test_combine_lets_a_key_error_from_merge_through_in_every_loop(
    agg: Aggregator, raising: Any, message: str, position: int
) -> None:
    records: list[Any] = [("k", 1)] * (position + 100)
    records[position] = ("k", raising)
    with pytest.raises(KeyError, match=message):
        combine(iter(records), agg)


def _parse(line: str) -> tuple[str, int]:
    word, n = line.split()  # a user's bug on a line without a count: not a bad record of the shuffle
    return word, int(n)


def _merge_unpacking(c: int, v: Any) -> int:
    s, _ = v  # a user's bug: the values are ints
    return c + s


@pytest.mark.parametrize("position", [1, 3 * COMBINE_CHUNK + 7])  # the dict.get loop, the lookup loop
@pytest.mark.parametrize("bad", [7, ("k", 1, 2)], ids=["int", "triple"])
def test_a_record_that_is_not_a_pair_is_named_as_such(sc_inline: Context, position: int, bad: Any) -> None:
    records: list[Any] = [("k", 1)] * (position + 100)
    records[position] = bad
    with pytest.raises(JobFailedError, match=r"a shuffle expects an RDD of \(key, value\) pairs"):
        sc_inline.parallelize(records, 1).reduceByKey(operator.add).collect()


def test_partition_by_names_a_record_that_is_not_a_pair(sc_inline: Context) -> None:
    with pytest.raises(JobFailedError, match=r"partitionBy expects an RDD of \(key, value\) pairs.*: 7$"):
        sc_inline.parallelize([("k", 1), 7], 1).partitionBy(2).collect()


@pytest.mark.parametrize("position", [1, 3 * COMBINE_CHUNK + 7])
def test_a_users_own_error_is_not_blamed_on_the_records(sc_inline: Context, position: int) -> None:
    """An unpack error in a map before the shuffle, or in mergeValue, goes up as the user raised it."""
    lines = ["k 1"] * (position + 100)
    lines[position] = "k"
    with pytest.raises(JobFailedError, match=r"ValueError: not enough values to unpack") as failed:
        sc_inline.parallelize(lines, 1).map(_parse).reduceByKey(operator.add).collect()
    assert "expects an RDD of" not in str(failed.value)
    records: list[Any] = [("k", (1, 1))] * (position + 100)
    records[position] = ("k", 3)
    with pytest.raises(TypeError, match="cannot unpack non-iterable int") as raised:
        combine(iter(records), Aggregator(lambda v: v[0], _merge_unpacking, operator.add))
    assert type(raised.value) is TypeError
    # Builtins called by the loop raise in the loop's own frame, with the word "unpack" in the data.
    values: list[Any] = ["1"] * (position + 100)
    values[position] = "can't unpack"
    with pytest.raises(ValueError, match="invalid literal for int") as raised:
        combine(iter([("k", v) for v in values]), Aggregator(int, lambda c, v: c + int(v), operator.add))
    assert type(raised.value) is ValueError
    with pytest.raises(JobFailedError, match="ValueError: could not convert string to float") as failed:
        sc_inline.parallelize(values, 1).map(float).map(lambda x: ("k", x)).reduceByKey(
            operator.add
        ).collect()
    assert "expects an RDD of" not in str(failed.value)
    with pytest.raises(JobFailedError, match="KeyError: 'user'") as failed:
        sc_inline.parallelize([{"uid": 1}], 1).map(lambda d: (d["user"], d)).partitionBy(2).collect()
    assert "expects an RDD of" not in str(failed.value)
    with pytest.raises(JobFailedError, match="can only concatenate str") as failed:
        sc_inline.parallelize([("a", 1)], 1).partitionBy(2, lambda k: k + 1).collect()
    assert "expects an RDD of" not in str(failed.value)


@settings(max_examples=25, deadline=None)
@given(
    runs=st.lists(st.tuples(st.integers(0, 3 * COMBINE_CHUNK), st.integers(1, 40)), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_combine_matches_a_dict_reference_across_chunks_and_loops(runs: list[Any], seed: int) -> None:
    """Runs of mostly new and mostly known keys make combine switch loops; the result never changes."""
    rng = random.Random(seed)
    records = []
    for length, distinct in runs:
        spread = rng.choice([distinct, length + 1])  # few keys (lookup loop) or mostly new (get loop)
        records.extend((rng.randrange(spread), rng.randrange(5)) for _ in range(length))
    expected: dict[Any, Any] = {}
    for k, v in records:
        expected[k] = expected[k] + v if k in expected else v
    for agg in (
        Aggregator(identity, operator.add, operator.add),
        Aggregator(identity, lambda a, b: a + b, operator.add),
    ):
        got = combine(iter(records), agg)
        assert got == expected and list(got) == list(expected)  # same values, first-seen order
    as_lists = combine(iter(records), Aggregator(lambda v: [v], lambda c, v: [*c, v], operator.add))
    assert {k: sum(vs) for k, vs in as_lists.items()} == expected


def test_copartitioned_cogroup_is_one_narrow_pass(sc: Context) -> None:
    a = sc.parallelize(LEFT, 2).partitionBy(3)
    b = sc.parallelize(RIGHT, 2).partitionBy(3)
    grouped_ab = a.cogroup(b)
    debug = grouped_ab.toDebugString()
    assert b"CoGroupedRDD" in debug and debug.count(b"ShuffledRDD") == 2  # the two partitionBy's
    assert grouped_ab.partitioner == Partitioner(3, portable_hash)
    out = {k: tuple(list(x) for x in v) for k, v in grouped_ab.collect()}
    lg, rg = grouped(LEFT), grouped(RIGHT)
    assert out == {k: (lg.get(k, []), rg.get(k, [])) for k in set(lg) | set(rg)}
    assert all(isinstance(x, ResultIterable) for _, v in grouped_ab.collect() for x in v)
    # Another partition count is a shuffle again.
    assert b"CoGroupedRDD" not in a.cogroup(b, 2).toDebugString()


def test_copartitioned_cogroup_reads_records_as_pyspark_does(sc: Context) -> None:
    """kv[0] and kv[1]: a longer tuple is accepted on both paths; a record without them is refused."""
    triples = sc.parallelize([("a", 1, "x"), ("b", 2, "y")], 1).partitionBy(2)
    pairs = sc.parallelize([("a", 9)], 1).partitionBy(2)
    for grouped_ab in (pairs.cogroup(triples), pairs.cogroup(triples, 3)):  # narrow, then shuffled
        out = {k: tuple(list(x) for x in v) for k, v in grouped_ab.collect()}
        assert out == {"a": ([9], [1]), "b": ([], [2])}
    not_pairs = pairs.map(lambda kv: kv[1], preservesPartitioning=True)
    for n in (None, 3):  # narrow, then shuffled: the same error
        with pytest.raises(JobFailedError, match=r"cogroup expects RDDs of \(key, value\) pairs.*: 9"):
            pairs.cogroup(not_pairs, n).collect()


pair_lists = st.lists(st.tuples(st.integers(0, 12), st.integers()), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(left=pair_lists, right=pair_lists, parts=st.integers(1, 4), slices=st.integers(1, 3))
def test_copartitioned_cogroup_matches_the_shuffle_path(
    sc_inline: Context, left: list[Any], right: list[Any], parts: int, slices: int
) -> None:
    """Same keys, same values in the same order per key, as a cogroup through a shuffle."""
    a = sc_inline.parallelize(left, slices).partitionBy(parts)
    b = sc_inline.parallelize(right, slices).partitionBy(parts)
    narrow = a.cogroup(b).glom().collect()
    shuffled = dict(a.map(lambda kv: kv).cogroup(b.map(lambda kv: kv), parts).collect())
    assert sum(len(p) for p in narrow) == len(shuffled)
    for index, part in enumerate(narrow):
        for k, (xs, ys) in part:
            assert portable_hash(k) % parts == index
            assert (list(xs), list(ys)) == tuple(list(v) for v in shuffled[k])
