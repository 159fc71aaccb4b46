"""Every per-batch DStream operation against expected outputs from a plain-Python reference."""

from __future__ import annotations

import operator
from collections import Counter
from typing import Any

from tests.streaming.conftest import collect, run
from tests.streaming.reference import group_by_key, reduce_by_key

WORDS = [["a b", "c a"], [], ["b b b", "d"], ["a"]]
NUMS = [[1, 2, 3, 4], [5], [], [6, 7, 8, 9, 10]]
PAIRS = [[("a", 1), ("b", 2), ("a", 3)], [("c", 4)], [], [("b", 5), ("b", 6), ("a", 7)]]
OTHER = [[("a", "x"), ("d", "y")], [("c", "z"), ("c", "w")], [("a", "v")], []]


def times(n: int) -> list[int]:
    return [(i + 1) * 1000 for i in range(n)]


def expect(batches: list[list[Any]], per_batch: Any) -> dict[int, list[Any]]:
    return {t: sorted(per_batch(b), key=repr) for t, b in zip(times(len(batches)), batches, strict=True)}


def run_all(ssc: Any, clock: Any, n: int) -> None:
    run(ssc, clock, n)


def test_map_flatmap_filter(ssc, clock):
    s = ssc.queueStream(WORDS)
    mapped = collect(s.map(str.upper))
    flat = collect(s.flatMap(str.split))
    filtered = collect(s.filter(lambda x: "a" in x))
    run_all(ssc, clock, 4)
    assert mapped == expect(WORDS, lambda b: [x.upper() for x in b])
    assert flat == expect(WORDS, lambda b: [w for x in b for w in x.split()])
    assert filtered == expect(WORDS, lambda b: [x for x in b if "a" in x])


def test_map_partitions_and_with_index_and_glom(ssc, clock):
    s = ssc.queueStream(NUMS)
    sums = collect(s.mapPartitions(lambda it: [sum(it)]).reduce(operator.add))
    indexed = collect(s.mapPartitionsWithIndex(lambda i, it: ((i, x) for x in it)))
    glommed = collect(s.glom().flatMap(lambda part: part))
    partitions = collect(s.glom().map(lambda p: isinstance(p, list)))
    run_all(ssc, clock, 4)
    # Every batch (a parallelized list) has partitions, so the sum of partition sums is always emitted.
    assert sums == expect(NUMS, lambda b: [sum(b)])
    assert {t: sorted((x for _, x in v), key=repr) for t, v in indexed.items()} == expect(NUMS, list)
    assert all(0 <= i < 2 for v in indexed.values() for i, _ in v)
    assert glommed == expect(NUMS, list)
    assert all(v and all(v) for v in partitions.values())


def test_reduce_count_count_by_value(ssc, clock):
    s = ssc.queueStream(NUMS)
    reduced = collect(s.reduce(operator.add))
    counted = collect(s.count())
    values = collect(s.map(lambda x: x % 3).countByValue())
    run_all(ssc, clock, 4)
    assert reduced == expect(NUMS, lambda b: [sum(b)] if b else [])
    assert counted == expect(NUMS, lambda b: [len(b)])
    assert values == expect(NUMS, lambda b: list(Counter(x % 3 for x in b).items()))


def test_reduce_combine_group_by_key(ssc, clock):
    s = ssc.queueStream(PAIRS)
    reduced = collect(s.reduceByKey(operator.add))
    combined = collect(s.combineByKey(lambda v: [v], lambda c, v: [*c, v], operator.add, 3))
    grouped = collect(s.groupByKey(2).mapValues(sorted))
    run_all(ssc, clock, 4)
    assert reduced == expect(PAIRS, lambda b: list(reduce_by_key(b, operator.add).items()))
    assert {t: [(k, sorted(v)) for k, v in vs] for t, vs in combined.items()} == expect(
        PAIRS, lambda b: [(k, sorted(v)) for k, v in group_by_key(b).items()]
    )
    assert grouped == expect(PAIRS, lambda b: [(k, sorted(v)) for k, v in group_by_key(b).items()])


def test_map_values_flat_map_values(ssc, clock):
    s = ssc.queueStream(PAIRS)
    mv = collect(s.mapValues(lambda v: v * 10))
    fmv = collect(s.flatMapValues(lambda v: range(v % 3)))
    run_all(ssc, clock, 4)
    assert mv == expect(PAIRS, lambda b: [(k, v * 10) for k, v in b])
    assert fmv == expect(PAIRS, lambda b: [(k, x) for k, v in b for x in range(v % 3)])


def test_partition_by_and_repartition(ssc, clock):
    s = ssc.queueStream(PAIRS)
    parts = collect(s.partitionBy(3).glom().map(lambda p: sorted({k for k, _ in p})), sort=False)
    n_parts = collect(s.repartition(3).glom().map(len).count())
    content = collect(s.repartition(3))
    run_all(ssc, clock, 4)
    for t, batch in zip(times(4), PAIRS, strict=True):
        key_sets = parts[t]
        assert len(key_sets) == 3
        # every key lands in exactly one partition
        flat = [k for ks in key_sets for k in ks]
        assert sorted(flat) == sorted({k for k, _ in batch})
    assert n_parts == {t: [3] for t in times(4)}
    assert content == expect(PAIRS, list)


def _joins(a: list[tuple[Any, Any]], b: list[tuple[Any, Any]]) -> dict[str, list[Any]]:
    inner = [(k, (v, w)) for k, v in a for k2, w in b if k == k2]
    left = inner + [(k, (v, None)) for k, v in a if k not in {k2 for k2, _ in b}]
    right = inner + [(k, (None, w)) for k, w in b if k not in {k1 for k1, _ in a}]
    full = left + [(k, (None, w)) for k, w in b if k not in {k1 for k1, _ in a}]
    return {"join": inner, "left": left, "right": right, "full": full}


def test_joins_and_cogroup(ssc, clock):
    a = ssc.queueStream(PAIRS)
    b = ssc.queueStream(OTHER)
    outs = {
        "join": collect(a.join(b)),
        "left": collect(a.leftOuterJoin(b, 3)),
        "right": collect(a.rightOuterJoin(b)),
        "full": collect(a.fullOuterJoin(b)),
    }
    cogrouped = collect(a.cogroup(b).mapValues(lambda vw: (sorted(vw[0]), sorted(vw[1]))))
    run_all(ssc, clock, 4)
    for t, pa, pb in zip(times(4), PAIRS, OTHER, strict=True):
        expected = _joins(pa, pb)
        for name, out in outs.items():
            assert out[t] == sorted(expected[name], key=repr), (name, t)
        ga, gb = group_by_key(pa), group_by_key(pb)
        want = [(k, (sorted(ga.get(k, [])), sorted(gb.get(k, [])))) for k in set(ga) | set(gb)]
        assert cogrouped[t] == sorted(want, key=repr)


def test_union_transform_transform_with(ssc, clock):
    a = ssc.queueStream(NUMS)
    b = ssc.queueStream([[100], [200, 300], [], []])
    union = collect(a.union(b))
    ssc_union = collect(ssc.union(a, b, a))
    seen_times: list[int] = []

    def with_time(t, rdd):
        seen_times.append(round(t.timestamp() * 1000))
        return rdd.map(lambda x: x + 1)

    t1 = collect(a.transform(lambda rdd: rdd.map(lambda x: -x)))
    t2 = collect(a.transform(with_time))
    tw = collect(a.transformWith(lambda x, y: x.union(y).map(lambda v: v * 2), b))
    tw3 = collect(a.transformWith(lambda t, x, y: x.union(y) if t.year >= 1970 else None, b))
    multi = collect(ssc.transform([a, b], lambda rdds: rdds[0].union(rdds[1]).filter(lambda v: v > 5)))
    run_all(ssc, clock, 4)
    bs = [[100], [200, 300], [], []]
    both = [x + y for x, y in zip(NUMS, bs, strict=True)]
    assert union == expect(both, list)
    assert ssc_union == expect([x + y + x for x, y in zip(NUMS, bs, strict=True)], list)
    assert t1 == expect(NUMS, lambda b_: [-x for x in b_])
    assert t2 == expect(NUMS, lambda b_: [x + 1 for x in b_])
    assert sorted(set(seen_times)) == times(4)
    assert tw == expect(both, lambda b_: [x * 2 for x in b_])
    assert tw3 == expect(both, list)
    assert multi == expect(both, lambda b_: [x for x in b_ if x > 5])


def test_slice_returns_the_remembered_rdds(ssc, clock):
    s = ssc.queueStream(NUMS)
    collect(s)
    ssc.remember(10.0)
    run(ssc, clock, 4)
    rdds = s.slice(2.0, 3.5)  # epoch seconds; 3.5 is floored onto the batch grid
    assert [sorted(r.collect()) for r in rdds] == [NUMS[1], NUMS[2]]


def test_context_and_spark_context(ssc, sc):
    s = ssc.queueStream([[1]])
    assert s.context() is ssc
    assert ssc.sparkContext is sc


CALLS: list[int] = []


def tracked(x):
    # Module-level so that tasks (which get pickled functions) append to this very list.
    CALLS.append(x)
    return x * 2


def test_persist_and_cache_keep_results(ssc, clock):
    CALLS.clear()
    s = ssc.queueStream([[1, 2, 3]]).map(tracked).cache()
    first = collect(s)
    second = collect(s.map(lambda x: x + 1))
    run(ssc, clock, 1)
    assert first == {1000: [2, 4, 6]} and second == {1000: [3, 5, 7]}
    # cached: the map ran once per element although two outputs read the stream
    assert sorted(CALLS) == [1, 2, 3]


def test_persist_with_a_storage_level(ssc, clock):
    from dstream import StorageLevel

    CALLS.clear()
    s = ssc.queueStream([[1, 2]]).map(tracked).persist(StorageLevel.MEMORY_ONLY)
    levels = []
    s.foreachRDD(lambda rdd: levels.append(rdd.getStorageLevel()))
    out = collect(s)
    run(ssc, clock, 1)
    assert out == {1000: [2, 4]} and levels == [StorageLevel.MEMORY_ONLY]
    assert sorted(CALLS) == [1, 2]


def test_checkpointed_stream_is_read_back_from_its_checkpoint(ssc, clock, tmp_path):
    # Synchronous data checkpoints: the batch's own job already reads the checkpoint back.
    ssc.sparkContext._conf.set("dstream.checkpoint.async", "false")
    ssc.checkpoint(str(tmp_path / "ckpt"))
    s = ssc.queueStream(NUMS).map(lambda x: x * 3).checkpoint(2)
    lineages = {}
    s.foreachRDD(lambda t, rdd: lineages.__setitem__(round(t.timestamp() * 1000), rdd.toDebugString()))
    out = collect(s)
    run(ssc, clock, 4)
    assert out == expect(NUMS, lambda b: [x * 3 for x in b])
    base = tmp_path / "ckpt" / "rdd" / str(s._id)
    assert sorted(p.name for p in base.iterdir()) == ["2000", "4000"]
    assert b"ReliableCheckpointRDD" in lineages[2000] and b"ReliableCheckpointRDD" not in lineages[1000]
