"""Fixtures for the streaming tests: a Context, a ManualClock at 0 and a 1 s StreamingContext.

The Context runs on two threads, or on the Dask backend joining the session's cluster (the ``dask``
param; tests/conftest.py keeps a representative subset of those in the default run).
Everything runs on the ManualClock: tests advance it and wait for batches with timeouts, never sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dstream.clock import ManualClock
from dstream.context import Conf, Context
from dstream.streaming import StreamingContext
from tests.support.contexts import engine_context, streaming_context
from tests.support.dask_cluster import dask_conf

WAIT_S = 30.0


@pytest.fixture(params=["local[2]", pytest.param("dask", marks=pytest.mark.dask)])
def master(request: pytest.FixtureRequest) -> str:
    """Each master the streaming tests run on."""
    if request.param == "dask":
        url: str = request.getfixturevalue("dask_master")
        return url
    return str(request.param)


def master_conf(master: str, conf: Conf | None = None) -> Conf:
    """`conf` plus what the master needs in tests (the session's Dask cluster shares the local disk)."""
    conf = conf or Conf()
    return dask_conf(conf) if master.startswith("dask://") else conf


@pytest.fixture
def sc(master: str) -> Iterator[Context]:
    # These tests drive queueStream through stateful operations that need a checkpoint directory;
    # a queueStream cannot be replayed, so checkpointing refuses it unless explicitly allowed.
    conf = master_conf(master, Conf().set("dstream.checkpoint.allowQueueStream", "true"))
    with engine_context(conf, master) as ctx:
        yield ctx


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(0)


@pytest.fixture
def ssc(sc: Context, clock: ManualClock) -> Iterator[StreamingContext]:
    with streaming_context(sc, clock) as context:
        yield context


def to_ms(t: Any) -> int:
    """A foreachRDD datetime back to epoch milliseconds."""
    return round(t.timestamp() * 1000)


def collect(stream: Any, sort: bool = True) -> dict[int, list[Any]]:
    """Register an output that records each batch's elements by batch time (ms)."""
    out: dict[int, list[Any]] = {}

    def record(t: Any, rdd: Any) -> None:
        items = rdd.collect()
        out[to_ms(t)] = sorted(items, key=repr) if sort else items

    stream.foreachRDD(record)
    return out


def run(ssc: StreamingContext, clock: ManualClock, batches: int, batch_ms: int = 1000) -> None:
    """Start (if needed) and run `batches` batches, waiting for the last one."""
    if ssc.runtime.state == "INITIALIZED":
        ssc.start()
    target = clock.time_ms() + batches * batch_ms
    clock.set_time(target)
    assert ssc.wait_for_batch(target // batch_ms * batch_ms, WAIT_S), f"batch {target} not processed"


def store_received(ssc: StreamingContext, clock: ManualClock, stream: Any, count: int) -> None:
    """Wait until a socket stream received `count` lines, then have them cut into a block and stored.

    Moves the ManualClock to the block generator's next tick (before the next batch time), so the
    next batch holds the lines whatever the threads' timing.
    """
    assert stream.wait_for_received(count, WAIT_S), f"{count} lines not received"
    tracker = ssc.runtime.block_allocator
    supervisor = tracker.supervisor(stream._id)
    assert supervisor is not None
    now_ms = clock.time_ms()
    tick = supervisor.generator.wait_for_timer(now_ms, WAIT_S)
    assert tick is not None and tick // 1000 == now_ms // 1000, f"block tick {tick} not before the next batch"
    clock.set_time(tick)
    assert supervisor.generator.wait_for_pushed(count, WAIT_S), f"{count} lines not stored"
