"""Spark's PID rate estimator as a pure state machine (Hypothesis) and the controller around it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dstream.errors import DStreamValueError
from dstream.streaming.listener import BatchInfo, StreamingListenerBatchCompleted, StreamInputInfo
from dstream.streaming.rate_controller import RateController
from dstream.streaming.rate_estimator import PIDRateEstimator, PIDState

BATCH_MS = 1000
batches = st.lists(
    st.tuples(
        st.integers(0, 5000),  # time since the previous batch's end
        st.integers(0, 10**7),  # records
        st.integers(0, 60_000),  # processing delay
        st.integers(0, 600_000),  # scheduling delay
    ),
    max_size=40,
)
constants = st.tuples(st.floats(0, 5), st.floats(0, 5), st.floats(0, 5), st.floats(0.001, 1e5))


def run(estimator: PIDRateEstimator, steps: list[tuple[int, int, int, int]]) -> list[float | None]:
    state, time_ms, rates = PIDState(), 0, []
    for gap_ms, records, work_ms, wait_ms in steps:
        time_ms += gap_ms
        state, rate = estimator.compute(state, time_ms, records, work_ms, wait_ms)
        rates.append(rate)
    return rates


@given(steps=batches, pid=constants)
def test_the_rate_is_never_below_min_rate_nan_or_negative(
    steps: list[tuple[int, int, int, int]], pid: tuple[float, float, float, float]
) -> None:
    estimator = PIDRateEstimator(BATCH_MS, *pid)
    for rate in run(estimator, steps):
        if rate is not None:
            assert math.isfinite(rate) and rate >= estimator.min_rate_per_s > 0


@given(records=st.integers(1, 10**6), work_ms=st.integers(1, 10_000), time_ms=st.integers(0, 10**9))
def test_the_first_usable_batch_only_measures(records: int, work_ms: int, time_ms: int) -> None:
    state, rate = PIDRateEstimator(BATCH_MS).compute(PIDState(), time_ms, records, work_ms, 0)
    assert rate is None and not state.first_run
    assert state.latest_rate_per_s == pytest.approx(records / work_ms * 1000)


@given(steps=batches)
def test_batches_without_records_work_or_progress_in_time_change_nothing(
    steps: list[tuple[int, int, int, int]],
) -> None:
    estimator = PIDRateEstimator(BATCH_MS)
    state = PIDState(False, 10_000, 5000.0, 0.0)
    for gap_ms, records, work_ms, wait_ms in steps:
        for args in ((10_000 - gap_ms, records, work_ms), (20_000, 0, work_ms), (20_000, records, 0)):
            assert estimator.compute(state, *args, wait_ms) == (state, None)


@given(
    rate_per_s=st.floats(100, 1e6),
    proportional=st.floats(0.2, 1.0),
    integral=st.floats(0, 1.0),
    steps_n=st.integers(60, 100),
)
def test_a_steady_workload_converges_to_its_processing_rate(
    rate_per_s: float, proportional: float, integral: float, steps_n: int
) -> None:
    # A steady workload: the same processing rate every batch, no backlog (scheduling delay 0).
    estimator = PIDRateEstimator(BATCH_MS, proportional, integral, 0.0, min_rate_per_s=1.0)
    work_ms = 800
    records = max(1, round(rate_per_s * work_ms / 1000))
    measured = records / work_ms * 1000
    rates = run(estimator, [(BATCH_MS, records, work_ms, 0)] * steps_n)
    assert rates[-1] == pytest.approx(measured, rel=1e-3)


@given(rate_per_s=st.floats(1000, 1e6), wait_ms=st.integers(1, 100_000))
def test_a_backlog_pushes_the_rate_below_the_processing_rate(rate_per_s: float, wait_ms: int) -> None:
    estimator = PIDRateEstimator(BATCH_MS)
    records = round(rate_per_s)
    rates = run(estimator, [(BATCH_MS, records, 1000, 0), (BATCH_MS, records, 1000, wait_ms)])
    assert rates[1] is not None and rates[1] < records


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"batch_ms": 0}, "batch_ms"),
        ({"proportional": -1.0}, "proportional"),
        ({"integral": float("nan")}, "integral"),
        ({"derivative": -0.1}, "derivative"),
        ({"min_rate_per_s": 0.0}, "min_rate_per_s"),
    ],
)
def test_bad_constants_are_refused_by_name(kwargs: dict[str, float], named: str) -> None:
    with pytest.raises(DStreamValueError, match=named):
        PIDRateEstimator(**{"batch_ms": BATCH_MS, **kwargs})  # type: ignore[arg-type]


class Target:
    def __init__(self) -> None:
        self.updates: list[tuple[int, float]] = []

    def update_rate_limit(self, stream_id: int, records_per_s: float) -> None:
        self.updates.append((stream_id, records_per_s))


def completed(
    end_ms: int, records: dict[int, int], work_ms: int, wait_ms: int
) -> StreamingListenerBatchCompleted:
    start = end_ms - work_ms
    info = BatchInfo(
        batchTime=end_ms,
        streamIdToInputInfo={sid: StreamInputInfo(sid, n) for sid, n in records.items()},
        submissionTime=start - wait_ms,
        processingStartTime=start,
        processingEndTime=end_ms,
        outputOperationInfos={},
    )
    return StreamingListenerBatchCompleted(info)


def test_the_controller_publishes_each_receiver_streams_estimate_from_completed_batches() -> None:
    target = Target()
    controller = RateController(target, [0, 1], PIDRateEstimator(BATCH_MS))
    controller.onBatchCompleted(completed(1000, {0: 4000, 1: 800}, 1000, 0))  # first: measures only
    assert target.updates == []
    controller.onBatchCompleted(completed(2000, {0: 2000, 1: 800}, 1000, 0))
    assert target.updates == [(0, pytest.approx(2000.0)), (1, pytest.approx(800.0))]
