"""Spark's PID rate estimator, as a pure function of its state and one completed batch.

After each completed batch the estimator proposes how many records per second each receiver should
accept, so that a batch's input can be processed within about one batch interval (Spark's
`PIDRateEstimator`, used when `spark.streaming.backpressure.enabled` is true):

    processing_rate = records / processing_delay                       (records/s)
    error           = latest_rate - processing_rate
    historical      = scheduling_delay * processing_rate / batch_interval
    d_error         = (error - latest_error) / seconds since the last estimate
    new_rate        = max(min_rate, latest_rate - P*error - I*historical - D*d_error)

A batch is used only if it is later than the last one used, has records and a positive processing
delay. The first such batch only sets `latest_rate` to its processing rate (no estimate); every later
one yields `new_rate`. Defaults are Spark's: P = 1.0, I = 0.2, D = 0.0, min_rate = 100 records/s.

`PIDState` is a frozen value and `PIDRateEstimator.compute` returns the next state with the estimate,
so the rules are tested with Hypothesis (tests/streaming/test_rate_estimator.py) and the caller
(`dstream.streaming.rate_controller`) owns the state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from dstream.errors import DStreamValueError


@dataclass(frozen=True)
class PIDState:
    """What the estimator remembers between batches (Spark's initial values)."""

    first_run: bool = True
    latest_time_ms: int = -1
    latest_rate_per_s: float = -1.0
    latest_error: float = -1.0


@dataclass(frozen=True)
class PIDRateEstimator:
    """The PID controller's constants.

    Attributes:
        batch_ms: the batch interval.
        proportional: weight of the current error (>= 0).
        integral: weight of the error accumulated as scheduling delay (>= 0).
        derivative: weight of the error's rate of change (>= 0).
        min_rate_per_s: the estimate's floor (> 0), so a receiver always gets some data to measure.
    """

    batch_ms: int
    proportional: float = 1.0
    integral: float = 0.2
    derivative: float = 0.0
    min_rate_per_s: float = 100.0

    def __post_init__(self) -> None:
        if self.batch_ms <= 0:
            raise DStreamValueError(f"batch_ms of the PID rate estimator must be > 0, got {self.batch_ms!r}")
        for name in ("proportional", "integral", "derivative"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise DStreamValueError(f"{name} term of the PID rate estimator must be >= 0, got {value!r}")
        if not (math.isfinite(self.min_rate_per_s) and self.min_rate_per_s > 0):
            raise DStreamValueError(
                f"min_rate_per_s of the PID rate estimator must be > 0, got {self.min_rate_per_s!r}"
            )

    def compute(
        self, state: PIDState, time_ms: int, records: int, processing_delay_ms: int, scheduling_delay_ms: int
    ) -> tuple[PIDState, float | None]:
        """The state after batch `time_ms` (its processing end) and the new rate, or None (no estimate)."""
        if time_ms <= state.latest_time_ms or records <= 0 or processing_delay_ms <= 0:
            return state, None
        since_update_s = (time_ms - state.latest_time_ms) / 1000.0
        processing_rate = records / processing_delay_ms * 1000.0
        if state.first_run:
            return PIDState(False, time_ms, processing_rate, 0.0), None
        error = state.latest_rate_per_s - processing_rate
        historical_error = max(0, scheduling_delay_ms) * processing_rate / self.batch_ms
        d_error = (error - state.latest_error) / since_update_s
        new_rate = max(
            self.min_rate_per_s,
            state.latest_rate_per_s
            - self.proportional * error
            - self.integral * historical_error
            - self.derivative * d_error,
        )
        return replace(
            state, latest_time_ms=time_ms, latest_rate_per_s=new_rate, latest_error=error
        ), new_rate
