"""Broadcast variables and accumulators, from PySpark's documented behaviour (its doctests and guide)."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator

import pytest

from dstream import Accumulator, AccumulatorParam, Broadcast, Context
from dstream.backends.executor_env import running_in
from dstream.broadcast import BroadcastRegistry, registry_of
from dstream.errors import DStreamStateError
from tests.support.contexts import engine_context

MASTERS = ["local-inline", "local[2]"]


@pytest.fixture(params=MASTERS)
def sc(request: pytest.FixtureRequest) -> Iterator[Context]:
    with engine_context(master=request.param) as ctx:
        yield ctx


class VectorAccumulatorParam(AccumulatorParam[list[float]]):
    def zero(self, value: list[float]) -> list[float]:
        return [0.0] * len(value)

    def addInPlace(self, val1: list[float], val2: list[float]) -> list[float]:
        for i in range(len(val1)):
            val1[i] += val2[i]
        return val1


def test_accumulator_doctest_of_pyspark(sc: Context) -> None:
    a = sc.accumulator(1)
    assert a.value == 1
    a.value = 2
    a += 5
    assert a.value == 7
    assert sc.accumulator(1.0).value == 1.0
    assert sc.accumulator(1j).value == 1j
    rdd = sc.parallelize([1, 2, 3])

    def f(x: int) -> None:
        nonlocal a
        a += x

    rdd.foreach(f)
    assert a.value == 13
    b = sc.accumulator(0)
    rdd.foreach(lambda x: b.add(x))
    assert b.value == 6
    assert isinstance(a, Accumulator) and repr(b) == f"Accumulator<id={b.aid}, value=6>" and str(b) == "6"


def test_custom_accumulator_param(sc: Context) -> None:
    va = sc.accumulator([1.0, 2.0, 3.0], VectorAccumulatorParam())

    def g(x: int) -> None:
        nonlocal va
        va += [x] * 3

    sc.parallelize([1, 2, 3], 3).foreach(g)
    assert va.value == [7.0, 8.0, 9.0]


def test_no_default_param_for_other_types(sc: Context) -> None:
    with pytest.raises(TypeError, match="No default accumulator param for type <class 'list'>"):
        sc.accumulator([1.0, 2.0])


def test_reading_or_setting_value_inside_a_task_raises(sc: Context) -> None:
    a = sc.accumulator(0)
    rdd = sc.parallelize([1, 2, 3], 2)
    with pytest.raises(RuntimeError, match="cannot be accessed inside tasks"):
        rdd.map(lambda x: a.value).collect()

    def h(x: int) -> None:
        a.value = 7

    with pytest.raises(RuntimeError, match="cannot be accessed inside tasks"):
        rdd.foreach(h)


def test_updates_come_back_with_task_results_not_through_shared_memory(sc: Context) -> None:
    # Every task is pickled, so a task adds to its own copy, which starts at zero (not at the
    # driver's value); the driver merges each successful task's partial sum once.
    a = sc.accumulator(100)

    def add(it: Iterator[int]) -> list[int]:
        for x in it:
            a.add(x)
        return [a._value]

    partials = sc.parallelize(range(10), 2).mapPartitions(add).collect()
    assert partials == [0 + 1 + 2 + 3 + 4, 5 + 6 + 7 + 8 + 9]
    assert a.value == 100 + sum(range(10))


def test_updates_of_shuffle_map_tasks_and_of_failed_jobs(sc: Context) -> None:
    a = sc.accumulator(0)

    def count(kv: tuple[int, int]) -> tuple[int, int]:
        a.add(1)
        return kv

    pairs = sc.parallelize([(i % 3, i) for i in range(9)], 3).map(count)
    assert sorted(pairs.reduceByKey(lambda x, y: x + y).collect()) == [(0, 9), (1, 12), (2, 15)]
    assert a.value == 9

    def boom(x: int) -> int:
        a.add(1)
        if x == 5:
            raise ValueError("boom")
        return x

    with pytest.raises(Exception, match="boom"):
        sc.parallelize(range(6), 1).map(boom).collect()
    assert a.value == 9  # a failed task's updates are dropped


def test_broadcast_value_in_tasks_and_on_the_driver(sc: Context) -> None:
    b = sc.broadcast([1, 2, 3, 4, 5])
    assert isinstance(b, Broadcast) and b.value == [1, 2, 3, 4, 5]
    assert sc.parallelize([0, 0], 2).flatMap(lambda x: b.value).collect() == [1, 2, 3, 4, 5] * 2
    b.unpersist()
    assert sc.parallelize([0, 1], 2).map(lambda x: b.value[x]).collect() == [1, 2]  # reloaded


def test_a_broadcast_pickles_by_id_not_by_value(sc: Context) -> None:
    big = sc.broadcast("x" * 1_000_000)
    assert len(pickle.dumps(big)) < 200
    handle = pickle.loads(pickle.dumps(big))
    with running_in(sc.executor_env):  # as inside a task on the driver's executor
        assert handle.value == "x" * 1_000_000
    with pytest.raises(DStreamStateError, match=f"broadcast {big.id} was unpickled outside a task"):
        _ = pickle.loads(pickle.dumps(big)).value


def test_a_destroyed_broadcast_cannot_be_used(sc: Context) -> None:
    b = sc.broadcast({"k": 1})
    rdd = sc.parallelize([1], 1)
    b.destroy()
    with pytest.raises(DStreamStateError, match=f"Attempted to use broadcast {b.id} after it was destroyed"):
        rdd.map(lambda x: b.value["k"]).collect()
    with pytest.raises(DStreamStateError, match="after it was destroyed"):
        _ = b.value


def test_an_unpicklable_value_fails_at_broadcast(sc: Context) -> None:
    with pytest.raises(TypeError, match="cannot broadcast"):
        sc.broadcast(threading.Lock())


def test_a_worker_process_fetches_a_broadcast_it_does_not_hold() -> None:
    # What a Dask worker does: its registry is empty, a fetcher gets the bytes the driver published.
    published = {7: pickle.dumps({"from": "driver"})}
    worker = BroadcastRegistry()
    with pytest.raises(DStreamStateError, match="broadcast 7 is not available"):
        worker.load(7)
    worker.set_fetcher(published.get)
    assert Broadcast(7, registry=worker).value == {"from": "driver"}


def test_broadcasts_are_dropped_when_the_context_stops() -> None:
    with engine_context(master="local-inline") as sc:
        b = sc.broadcast(1)
        registry = registry_of(sc.executor_env)
        assert registry.load(b.id) == 1
    with pytest.raises(DStreamStateError, match="not available"):
        registry.load(b.id)
