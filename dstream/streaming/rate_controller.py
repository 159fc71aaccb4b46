"""The backpressure controller: completed batches in, each receiver's rate limit out (Spark's RateController).

With `spark.streaming.backpressure.enabled`, the context adds one `RateController` to the listener bus.
On every `BatchCompleted` it feeds each receiver stream's record count, the batch's processing delay and
scheduling delay to that stream's PID estimator (rate_estimator.py) and hands a new estimate to the
`RateLimitTarget` (the ReceiverTracker), which passes it to the stream's receiver supervisor, whose
token bucket applies it capped by `spark.streaming.receiver.maxRate`. The core never imports the
receivers: the target is the protocol declared in runtime.py.

Listener events are read in exactly one place, `batch_facts`, so a change of the event API (PySpark's
getter form) touches one function.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dstream.config import BackpressureConfig
from dstream.streaming.listener import StreamingListener, StreamingListenerBatchCompleted
from dstream.streaming.rate_estimator import PIDRateEstimator, PIDState
from dstream.streaming.runtime import RateLimitTarget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchFacts:
    """What the estimator needs of one completed batch."""

    processing_end_ms: int
    processing_delay_ms: int
    scheduling_delay_ms: int
    records_by_stream: Mapping[int, int]


def batch_facts(event: StreamingListenerBatchCompleted) -> BatchFacts | None:
    """The facts of a completed batch, or None if it never ran (the one reader of listener events)."""
    info = event.batchInfo()
    end, work, wait = info.processingEndTime(), info.processingDelay(), info.schedulingDelay()
    if end is None or work is None or wait is None:
        return None
    return BatchFacts(end, work, wait, {sid: i.numRecords() for sid, i in info.streamIdToInputInfo().items()})


class RateController(StreamingListener):
    """One PID estimator per receiver stream; publishes each estimate to `target`.

    Args:
        target: receives `update_rate_limit(stream_id, records_per_s)`.
        stream_ids: the receiver streams to control.
        estimator: the PID constants.
    """

    def __init__(
        self, target: RateLimitTarget, stream_ids: Iterable[int], estimator: PIDRateEstimator
    ) -> None:
        self._target = target
        self._estimator = estimator
        self._states = {sid: PIDState() for sid in stream_ids}
        self.latest_rates: dict[int, float] = {}

    @classmethod
    def from_config(
        cls, target: RateLimitTarget, stream_ids: Iterable[int], batch_ms: int, config: BackpressureConfig
    ) -> RateController:
        estimator = PIDRateEstimator(
            batch_ms, config.proportional, config.integral, config.derivative, config.min_rate_per_s
        )
        return cls(target, stream_ids, estimator)

    def onBatchCompleted(self, batchCompleted: StreamingListenerBatchCompleted) -> None:
        facts = batch_facts(batchCompleted)
        if facts is not None:
            self.on_batch(facts)

    def on_batch(self, facts: BatchFacts) -> None:
        """Estimate each controlled stream's rate from one batch and publish the new ones."""
        for stream_id, state in self._states.items():
            records = facts.records_by_stream.get(stream_id, 0)
            state, rate = self._estimator.compute(
                state, facts.processing_end_ms, records, facts.processing_delay_ms, facts.scheduling_delay_ms
            )
            self._states[stream_id] = state
            if rate is not None:
                self.latest_rates[stream_id] = rate
                try:
                    self._target.update_rate_limit(stream_id, rate)
                except Exception:
                    log.exception("setting the rate limit of stream %d to %.1f/s failed", stream_id, rate)
