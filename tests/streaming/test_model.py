"""Model test: random pipelines over random batches against a plain-Python reference.

A pipeline is a list of stages over a stream of ints (map, filter, keyed reduceByKey, window,
updateStateByKey); the reference evaluates each stage batch by batch on {time: list} dictionaries,
knowing only the documented semantics (window = parent batches in (T - window, T] emitted when
T is a multiple of the slide; state = running per-key update over the parent's batches).
"""

from __future__ import annotations

import operator
import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dstream.clock import ManualClock
from dstream.context import Conf, Context
from dstream.streaming import StreamingContext
from tests.streaming.conftest import WAIT_S, collect

BATCH_MS = 1000
DRAIN_TICKS = 4

stage = st.one_of(
    st.tuples(st.just("add"), st.integers(-3, 3)),
    st.tuples(st.just("mod"), st.integers(2, 5)),
    st.tuples(st.just("keep_gt"), st.integers(0, 6)),
    st.tuples(st.just("reduce_by_key"), st.integers(2, 3)),
    st.tuples(st.just("window"), st.integers(1, 3), st.integers(1, 2)),
    st.tuples(st.just("state"), st.integers(2, 3)),
)


def add(c):
    return lambda x: x + c


def mod(m):
    return lambda x: x % m


def keep_gt(c):
    return lambda x: x > c


def state_sum(values, last):
    return sum(values) + (last or 0)


# -- the engine ------------------------------------------------------------------------------------


def build(stream: Any, stages: list[tuple]) -> Any:
    for op, *args in stages:
        if op == "add":
            stream = stream.map(add(args[0]))
        elif op == "mod":
            stream = stream.map(mod(args[0]))
        elif op == "keep_gt":
            stream = stream.filter(keep_gt(args[0]))
        elif op == "reduce_by_key":
            m = args[0]
            stream = (
                stream.map(lambda x, m=m: (x % m, x))
                .reduceByKey(operator.add)
                .map(lambda kv: kv[0] * 1000 + kv[1])
            )
        elif op == "window":
            slide_s = stream._slide_ms // 1000
            stream = stream.window(args[0] * slide_s, min(args[1], args[0]) * slide_s)
        elif op == "state":
            m = args[0]
            keyed = stream.map(lambda x, m=m: (x % m, x))
            stream = keyed.updateStateByKey(state_sum).map(lambda kv: kv[0] * 1000 + kv[1])
    return stream


# -- the reference ---------------------------------------------------------------------------------


def reference(batches: list[list[int]], stages: list[tuple], ticks: int) -> dict[int, list[int]]:
    stream = {(i + 1) * BATCH_MS: (batches[i] if i < len(batches) else []) for i in range(ticks)}
    slide = BATCH_MS
    for op, *args in stages:
        if op == "add":
            stream = {t: [x + args[0] for x in xs] for t, xs in stream.items()}
        elif op == "mod":
            stream = {t: [x % args[0] for x in xs] for t, xs in stream.items()}
        elif op == "keep_gt":
            stream = {t: [x for x in xs if x > args[0]] for t, xs in stream.items()}
        elif op == "reduce_by_key":
            m = args[0]
            new = {}
            for t, xs in stream.items():
                sums: dict[int, int] = {}
                for x in xs:
                    sums[x % m] = sums.get(x % m, 0) + x
                new[t] = [k * 1000 + v for k, v in sums.items()]
            stream = new
        elif op == "window":
            window, slide_new = args[0] * slide, min(args[1], args[0]) * slide
            new = {}
            for t in range(slide_new, ticks * BATCH_MS + 1, slide_new):
                new[t] = [x for pt, xs in sorted(stream.items()) if t - window < pt <= t for x in xs]
            stream, slide = new, slide_new
        elif op == "state":
            m = args[0]
            state: dict[int, int] = {}
            new = {}
            for t, xs in sorted(stream.items()):
                grouped: dict[int, list[int]] = {}
                for x in xs:
                    grouped.setdefault(x % m, []).append(x)
                state = {k: state_sum(grouped.get(k, []), state.get(k)) for k in set(state) | set(grouped)}
                new[t] = [k * 1000 + v for k, v in state.items()]
            stream = new
    return {t: sorted(xs) for t, xs in stream.items()}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(st.lists(st.integers(0, 9), max_size=6), min_size=1, max_size=5),
    stages=st.lists(stage, min_size=1, max_size=4),
)
def test_random_pipelines_match_the_reference(batches, stages):
    ticks = len(batches) + DRAIN_TICKS
    sc = Context("local[2]", conf=Conf().set("dstream.checkpoint.allowQueueStream", "true"))
    clock = ManualClock(0)
    ssc = StreamingContext(sc, BATCH_MS / 1000, clock=clock)
    try:
        with tempfile.TemporaryDirectory() as ckpt:
            ssc.checkpoint(ckpt)
            out = collect(build(ssc.queueStream(batches), stages))
            ssc.start()
            clock.set_time(ticks * BATCH_MS)
            assert ssc.wait_for_batch(ticks * BATCH_MS, WAIT_S)
            ssc.stop(stopSparkContext=False)
    finally:
        ssc.stop(stopSparkContext=False)
        sc.stop()
    assert {t: sorted(xs) for t, xs in out.items()} == reference(batches, stages, ticks)
