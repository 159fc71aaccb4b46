"""Random chains of operations against a plain-Python reference (Hypothesis)."""

from __future__ import annotations

import operator
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dstream import RDD, Context

Pairs = list[tuple[int, int]]
OTHER: Pairs = [(k, k * 100) for k in range(0, 9, 2)] + [(4, 7)]


def ref_reduce(pairs: Pairs) -> Pairs:
    out: dict[int, int] = {}
    for k, v in pairs:
        out[k] = out[k] + v if k in out else v
    return list(out.items())


def ref_group(pairs: Pairs) -> Pairs:
    out: dict[int, list[int]] = defaultdict(list)
    for k, v in pairs:
        out[k].append(v)
    return [(k, sum(vs) + len(vs)) for k, vs in out.items()]


def ref_join(pairs: Pairs) -> Pairs:
    return [(k, v * 10 + w) for k, v in pairs for k2, w in OTHER if k == k2]


# Each step: (name, engine transformation taking (rdd, n), reference on a list of pairs).
STEPS: dict[str, tuple[Callable[[RDD, int], RDD], Callable[[Pairs], Pairs]]] = {
    "map": (
        lambda r, n: r.map(lambda kv: ((kv[0] * 3 + 1) % 7, kv[1] + 1)),
        lambda p: [((k * 3 + 1) % 7, v + 1) for k, v in p],
    ),
    "filter": (
        lambda r, n: r.filter(lambda kv: kv[1] % 3 != 0),
        lambda p: [kv for kv in p if kv[1] % 3 != 0],
    ),
    "flatMap": (
        lambda r, n: r.flatMap(lambda kv: [kv, (kv[0] + 1, kv[1] * 2)]),
        lambda p: [x for k, v in p for x in ((k, v), (k + 1, v * 2))],
    ),
    "reduceByKey": (lambda r, n: r.reduceByKey(operator.add, n), ref_reduce),
    "groupByKey": (lambda r, n: r.groupByKey(n).mapValues(lambda vs: sum(vs) + len(vs)), ref_group),
    "join": (
        lambda r, n: r.join(r.context.parallelize(OTHER, 2), n).mapValues(lambda vw: vw[0] * 10 + vw[1]),
        ref_join,
    ),
    "distinct": (lambda r, n: r.distinct(n), lambda p: list(dict.fromkeys(p))),
    "partitionBy": (lambda r, n: r.partitionBy(n), lambda p: p),
    "coalesce": (lambda r, n: r.coalesce(n), lambda p: p),
    "repartition": (lambda r, n: r.repartition(n), lambda p: p),
    "union": (lambda r, n: r.union(r.map(lambda kv: (kv[0], -kv[1]))), lambda p: p + [(k, -v) for k, v in p]),
}

pairs_strategy = st.lists(st.tuples(st.integers(0, 8), st.integers(-20, 20)), max_size=40)
chain_strategy = st.lists(
    st.tuples(st.sampled_from(sorted(STEPS)), st.integers(1, 4)), min_size=1, max_size=5
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=pairs_strategy,
    slices=st.integers(1, 5),
    chain=chain_strategy,
    master=st.sampled_from(["local-inline", "local[2]"]),
)
def test_random_chains_match_python(
    data: Pairs, slices: int, chain: list[tuple[str, int]], master: str
) -> None:
    expected: Any = list(data)
    with Context(master) as sc:
        rdd = sc.parallelize(data, slices)
        for name, n in chain:
            engine_step, ref_step = STEPS[name]
            rdd = engine_step(rdd, n)
            expected = ref_step(expected)
        first = rdd.glom().collect()
        assert Counter(x for part in first for x in part) == Counter(expected)
        assert rdd.glom().collect() == first, "recomputation gives the same partitions in the same order"
        assert rdd.count() == len(expected)
