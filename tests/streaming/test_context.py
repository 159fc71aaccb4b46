"""StreamingContext lifecycle, first batch times, errors re-raised from awaitTermination."""

from __future__ import annotations

import threading
from collections import deque

import pytest

from dstream.clock import ManualClock, SystemClock
from dstream.context import Conf, Context
from dstream.errors import DStreamStateError, DStreamValueError, JobFailedError
from dstream.streaming import StreamingContext
from tests.streaming.conftest import WAIT_S, collect, run


def test_first_batch_is_the_next_multiple_of_the_batch_after_now(sc):
    clock = ManualClock(2_500)
    ssc = StreamingContext(sc, 2.0, clock=clock)
    out = collect(ssc.queueStream([[1], [2], [3]]))
    ssc.start()
    try:
        assert ssc.graph.zero_time_ms == 2_000
        clock.set_time(8_000)
        assert ssc.wait_for_batch(8_000, WAIT_S)
        assert out == {4_000: [1], 6_000: [2], 8_000: [3]}
    finally:
        ssc.stop(stopSparkContext=False)


def test_batches_follow_the_manual_clock(ssc, clock):
    out = collect(ssc.queueStream([[1], [2]]))
    ssc.start()
    assert not ssc.wait_for_batch(1000, 0.05)  # the clock has not moved: no batch
    clock.advance(999)
    assert not ssc.wait_for_batch(1000, 0.05)
    clock.advance(1)
    assert ssc.wait_for_batch(1000, WAIT_S)
    assert out == {1000: [1]}


def test_start_twice_and_operations_after_start_raise(ssc):
    stream = ssc.queueStream([[1]])
    stream.pprint()
    ssc.start()
    with pytest.raises(DStreamStateError, match="already been started"):
        ssc.start()
    with pytest.raises(DStreamStateError, match="after starting a context is not supported"):
        stream.map(str)
    with pytest.raises(DStreamStateError, match="after starting"):
        ssc.queueStream([[2]])
    with pytest.raises(DStreamStateError, match="started"):
        stream.cache()


def test_stop_twice_is_harmless_and_start_after_stop_raises(ssc):
    stream = ssc.queueStream([[1]])
    stream.pprint()
    ssc.start()
    ssc.stop(stopSparkContext=False)
    ssc.stop(stopSparkContext=False)
    assert StreamingContext.getActive() is None
    assert ssc.awaitTerminationOrTimeout(0.01) is True
    with pytest.raises(DStreamStateError, match="already been stopped"):
        ssc.start()
    with pytest.raises(DStreamStateError, match="after stopping a context"):
        stream.map(str)


def test_stop_spark_context_by_default(sc, clock):
    ssc = StreamingContext(sc, 1.0, clock=clock)
    ssc.queueStream([[1]]).pprint()
    ssc.start()
    ssc.stop()
    with pytest.raises(DStreamStateError, match="stopped"):
        sc.parallelize([1])


def test_start_without_output_operations_raises_and_stops_the_context(ssc):
    ssc.queueStream([[1]]).map(str)
    with pytest.raises(DStreamValueError, match="No output operations registered"):
        ssc.start()
    assert StreamingContext.getActive() is None
    with pytest.raises(DStreamStateError, match="already been stopped"):
        ssc.start()
    ssc.stop(stopSparkContext=False)  # harmless


def test_only_one_context_may_be_active(ssc, sc, clock):
    ssc.queueStream([[1]]).pprint()
    ssc.start()
    other = StreamingContext(sc, 1.0, clock=clock)
    other.queueStream([[1]]).pprint()
    with pytest.raises(DStreamStateError, match="Only one StreamingContext"):
        other.start()


def test_union_and_transform_argument_errors(ssc):
    a = ssc.queueStream([[1]])
    windowed = a.window(2, 2)
    with pytest.raises(ValueError, match="same slide duration"):
        a.union(windowed)
    with pytest.raises(ValueError, match="same slide duration"):
        ssc.union(a, windowed)
    with pytest.raises(ValueError, match="at least one DStream"):
        ssc.union()
    assert ssc.union(a) is a
    with pytest.raises(ValueError, match="one or two arguments"):
        a.transform(lambda x, y, z: x)
    with pytest.raises(ValueError, match="two or three arguments"):
        a.transformWith(lambda x: x, a)


def test_bad_batch_duration_is_rejected(sc):
    for bad in (0, -1, "1", None):
        with pytest.raises(DStreamValueError, match="batchDuration"):
            StreamingContext(sc, bad)


def test_get_active_and_get_active_or_create(ssc, tmp_path):
    ssc.queueStream([[1]]).pprint()
    assert StreamingContext.getActive() is None
    ssc.start()
    assert StreamingContext.getActive() is ssc
    assert StreamingContext.getActiveOrCreate(None, lambda: pytest.fail("setup called")) is ssc
    with pytest.raises(ValueError, match="setupFunc cannot be None"):
        StreamingContext.getActiveOrCreate(None, None)


def test_get_or_create_calls_setup_and_sets_the_checkpoint(sc, clock, tmp_path):
    calls = []

    def setup():
        calls.append(1)
        return StreamingContext(sc, 1.0, clock=clock)

    ssc = StreamingContext.getOrCreate(str(tmp_path / "ckpt"), setup)
    assert calls == [1]
    assert ssc.runtime.checkpoint.url == str(tmp_path / "ckpt")
    created = StreamingContext.getActiveOrCreate(str(tmp_path / "other"), setup)
    assert calls == [1, 1] and created.runtime.checkpoint.url == str(tmp_path / "other")


def test_clock_from_conf(clock):
    ctx = Context("local[1]", conf=Conf().set("spark.streaming.clock", "org.apache.spark.util.ManualClock"))
    try:
        assert isinstance(StreamingContext(ctx, 1.0).clock, ManualClock)
    finally:
        ctx.stop()
    ctx = Context("local[1]")
    try:
        assert isinstance(StreamingContext(ctx, 1.0).clock, SystemClock)
    finally:
        ctx.stop()


def fail_on_two(x):
    if x == 2:
        raise ValueError(f"bad record {x}")
    return x


def test_failing_job_is_reraised_and_later_batches_still_run(ssc, clock):
    out = collect(ssc.queueStream([[1], [2], [3]]).map(fail_on_two))
    run(ssc, clock, 3)
    assert out == {1000: [1], 3000: [3]}
    with pytest.raises(JobFailedError, match="bad record 2") as info:
        ssc.awaitTermination()
    causes, error = [], info.value.__cause__
    while error is not None:
        causes.append(error)
        error = error.__cause__
    # the RDD layer may wrap the task's error; the original is somewhere down the chain
    assert any(isinstance(c, ValueError) and str(c) == "bad record 2" for c in causes)
    assert "2000" in str(info.value)
    with pytest.raises(JobFailedError, match="bad record 2"):
        ssc.awaitTerminationOrTimeout(0.01)
    # a failed batch stays pending (a recovered driver runs it again)
    assert ssc.pending_batch_times() == [2000]


def test_error_in_a_transform_function_fails_job_generation(ssc, clock):
    def explode(rdd):
        raise RuntimeError("transform exploded")

    ssc.queueStream([[1]]).transform(explode).pprint()
    run(ssc, clock, 1)
    with pytest.raises(JobFailedError, match=r"Error generating jobs.*transform exploded"):
        ssc.awaitTermination(WAIT_S)


def test_await_termination_or_timeout(ssc):
    ssc.queueStream([[1]]).pprint()
    ssc.start()
    assert ssc.awaitTerminationOrTimeout(0.01) is False
    stopper = threading.Thread(target=ssc.stop, kwargs={"stopSparkContext": False})
    stopper.start()
    assert ssc.awaitTerminationOrTimeout(WAIT_S) is True
    stopper.join(WAIT_S)
    ssc.awaitTermination()  # returns at once once stopped


BLOCK = threading.Event()


def wait_for_release(x):
    assert BLOCK.wait(WAIT_S)
    return x


def test_graceful_stop_runs_every_generated_batch(ssc, clock):
    BLOCK.clear()
    out = collect(ssc.queueStream([[1], [2], [3]]).map(wait_for_release))
    ssc.start()
    clock.set_time(3000)  # three batches generated; the first one blocks
    stopper = threading.Thread(target=ssc.stop, kwargs={"stopSparkContext": False, "stopGraceFully": True})
    stopper.start()
    BLOCK.set()
    stopper.join(WAIT_S)
    assert not stopper.is_alive()
    assert out == {1000: [1], 2000: [2], 3000: [3]}


class ReleasingDeque(deque):
    """The scheduler's queue; releases the blocked job once a non-graceful stop has dropped the rest."""

    def clear(self):
        super().clear()
        BLOCK.set()


def test_non_graceful_stop_drops_queued_batches(ssc, clock):
    BLOCK.clear()
    out = collect(ssc.queueStream([[1], [2], [3]]).map(wait_for_release))
    ssc.runtime.scheduler._queue = ReleasingDeque()
    ssc.start()
    clock.set_time(3000)
    assert ssc.runtime.generator.wait_generated(3000, WAIT_S)  # all three generated; 1000 runs and blocks
    ssc.stop(stopSparkContext=False)
    assert BLOCK.is_set()
    assert 2000 not in out and 3000 not in out
    assert ssc.pending_batch_times()[-2:] == [2000, 3000]
