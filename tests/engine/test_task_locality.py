"""Which executors a task prefers (dstream.rdd.locality): the rule, and what the DAG scheduler gives it.

The rule is checked with Hypothesis against its statement; the scheduler's side on the local backend,
whose tasks carry the same preferences as on a cluster (the local backend ignores them): a block RDD's
task prefers the executors holding its received block, a persisted partition's task its holder, a
`makeRDD` partition the locations it was given, a reduce task the executors holding a large share of its
bucket, a checkpointed RDD nothing, and an executor the scheduler was told is lost never.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dstream.context import Context
from dstream.errors import DStreamValueError
from dstream.rdd.locality import largest_holders, preferred_locations
from dstream.receiver.block_rdd import BlockRef, block_rdd
from tests.support.contexts import engine_context

executors = st.sampled_from(["driver", "tcp://a", "tcp://b", "tcp://c", "tcp://d"])
groups = st.lists(st.lists(executors, max_size=3), max_size=4)


@given(groups=groups, lost=st.sets(executors))
def test_the_first_group_with_a_live_executor_wins(groups: list[list[str]], lost: set[str]) -> None:
    chosen = preferred_locations(groups, lost.__contains__)
    assert len(set(chosen)) == len(chosen)
    assert not set(chosen) & lost
    live_groups = [g for g in groups if any(e not in lost for e in g)]
    if not live_groups:
        assert chosen == ()
    else:
        first = live_groups[0]
        assert chosen == tuple(dict.fromkeys(e for e in first if e not in lost))


@given(sizes=st.dictionaries(executors, st.integers(0, 1000), max_size=5), fraction=st.floats(0.01, 1.0))
def test_a_reduce_task_prefers_every_executor_holding_a_large_share(
    sizes: dict[str, int], fraction: float
) -> None:
    chosen = largest_holders(sizes, fraction)
    total = sum(sizes.values())
    assert set(chosen) == {e for e, n in sizes.items() if n > 0 and n >= fraction * total}
    assert [sizes[e] for e in chosen] == sorted((sizes[e] for e in chosen), reverse=True)
    if total:  # with at most 5 holders the largest holds at least 20%: the default never prefers nothing
        assert largest_holders(sizes)[0] in {e for e, n in sizes.items() if n == max(sizes.values())}


def test_evenly_spread_map_outputs_leave_a_reduce_task_free_to_run_on_either_holder() -> None:
    assert largest_holders({"tcp://a": 52, "tcp://b": 48}) == ("tcp://a", "tcp://b")
    assert largest_holders({"tcp://a": 90, "tcp://b": 10}) == ("tcp://a",)
    assert largest_holders({"tcp://a": 0}) == largest_holders({}) == ()


class RecordingPreferences:
    """Wraps a backend's `run_tasks` to remember each task's preferred locations by partition."""

    def __init__(self, sc: Context) -> None:
        self.by_split: dict[int, tuple[str, ...]] = {}
        self._run = sc.backend.run_tasks
        sc.backend.run_tasks = self.run_tasks  # type: ignore[method-assign]

    def run_tasks(self, tasks: Sequence[Any]) -> list[Any]:
        self.by_split = {t.split: t.preferred_locations for t in tasks}
        return self._run(tasks)


@pytest.fixture
def sc() -> Iterator[Context]:
    with engine_context(master="local[2]") as ctx:
        yield ctx


def test_a_block_rdd_task_prefers_the_holders_of_its_received_block(sc: Context) -> None:
    refs = [BlockRef(f"b{i}", locations=(f"tcp://w{i}", "tcp://replica")) for i in range(3)]
    seen = RecordingPreferences(sc)
    with pytest.raises(Exception, match="b0"):  # no such block anywhere: the task fails, naming it
        block_rdd(sc, refs).collect()
    # Not 'driver', where the small reference to each block is held: the block itself is elsewhere.
    assert seen.by_split == {i: (f"tcp://w{i}", "tcp://replica") for i in range(3)}


def test_a_lost_holder_is_not_preferred_and_with_none_left_the_reference_holder_is(sc: Context) -> None:
    rdd = sc.makeRDD([("x", ["tcp://a", "tcp://b"]), ("y", ["tcp://a"])])
    seen = RecordingPreferences(sc)
    sc._scheduler.executor_lost("tcp://a")
    assert rdd.collect() == ["x", "y"]
    assert seen.by_split == {0: ("tcp://b",), 1: ("driver",)}


def test_make_rdd_holds_one_element_per_partition(sc: Context) -> None:
    rdd = sc.makeRDD([(1, ["tcp://a"]), ([2, 3], ()), ("s", ("tcp://b", "tcp://c"))])
    seen = RecordingPreferences(sc)
    assert rdd.getNumPartitions() == 3
    assert rdd.glom().collect() == [[1], [[2, 3]], ["s"]]
    assert seen.by_split == {0: ("tcp://a",), 1: ("driver",), 2: ("tcp://b", "tcp://c")}


@pytest.mark.parametrize(
    ("item", "shown"),
    [(("x", "tcp://a"), "'tcp://a'"), ("x", "'x'"), (("x", [1]), "1"), (("x", ["a"], 3), "3")],
)
def test_make_rdd_refuses_what_is_no_element_locations_pair(sc: Context, item: Any, shown: str) -> None:
    with pytest.raises(DStreamValueError, match=shown):
        sc.makeRDD([item])


def test_a_persisted_partition_is_preferred_where_it_is_held(sc: Context) -> None:
    rdd = sc.makeRDD([(i, ["tcp://elsewhere"]) for i in range(3)]).map(lambda x: x * 2).persist()
    seen = RecordingPreferences(sc)
    assert rdd.collect() == [0, 2, 4]
    assert seen.by_split == {i: ("tcp://elsewhere",) for i in range(3)}  # computed from its source
    assert rdd.map(lambda x: x + 1).collect() == [1, 3, 5]
    assert seen.by_split == {i: ("driver",) for i in range(3)}  # read where it was kept


def test_a_reduce_task_prefers_the_executor_holding_its_buckets(sc: Context) -> None:
    pairs = sc.parallelize([(i % 2, i) for i in range(10)], 2).reduceByKey(lambda a, b: a + b, 2)
    seen = RecordingPreferences(sc)
    assert sorted(pairs.collect()) == [(0, 20), (1, 25)]
    assert seen.by_split == {0: ("driver",), 1: ("driver",)}


def test_a_checkpointed_rdd_prefers_nothing(sc: Context, tmp_path: Path) -> None:
    sc.setCheckpointDir(str(tmp_path))
    rdd = sc.makeRDD([(i, ["tcp://a"]) for i in range(2)]).map(lambda x: x + 1)
    rdd.checkpoint()
    assert rdd.collect() == [1, 2]
    seen = RecordingPreferences(sc)
    assert rdd.collect() == [1, 2]
    assert seen.by_split == {0: (), 1: ()}
