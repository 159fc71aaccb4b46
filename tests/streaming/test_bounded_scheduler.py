"""The scheduler's bound on pending batches and the generator's bound on queued ticks."""

from __future__ import annotations

import re
import threading

import pytest

from dstream.clock import ManualClock
from dstream.config import StreamingConfig
from dstream.errors import DStreamValueError
from dstream.streaming.job_scheduler import Job, JobScheduler, JobSet
from dstream.streaming.listener import StreamingListenerBus

WAIT_S = 10.0
NOT_YET_S = 0.2  # only where finishing early would be the bug


def job_set(time_ms: int, gate: threading.Event) -> JobSet:
    return JobSet(time_ms, [Job(time_ms, 0, lambda: gate.wait(WAIT_S))], {}, time_ms)


def scheduler(pending_batches_max: int) -> JobScheduler:
    s = JobScheduler(
        ManualClock(0), StreamingListenerBus(), lambda m, e: None, lambda t: None, pending_batches_max
    )
    s.start()
    return s


def submit_in_thread(s: JobScheduler, js: JobSet) -> threading.Event:
    done = threading.Event()
    threading.Thread(target=lambda: (s.submit_job_set(js), done.set()), daemon=True).start()
    return done


def test_submitting_waits_while_pending_batches_max_batches_are_queued() -> None:
    gate = threading.Event()
    s = scheduler(pending_batches_max=2)
    s.submit_job_set(job_set(1000, gate))  # running, holds the executor thread
    s.submit_job_set(job_set(2000, gate))
    s.submit_job_set(job_set(3000, gate))
    done = submit_in_thread(s, job_set(4000, gate))
    assert not done.wait(NOT_YET_S)
    assert s.queued_batches() <= 2
    gate.set()  # batches run, room frees up
    assert done.wait(WAIT_S)
    assert s.wait_for_batch(4000, WAIT_S)
    s.stop(graceful=False, timeout_s=WAIT_S)


def test_a_submit_waiting_for_room_wakes_on_stop() -> None:
    gate = threading.Event()
    s = scheduler(pending_batches_max=1)
    s.submit_job_set(job_set(1000, gate))
    s.submit_job_set(job_set(2000, gate))
    done = submit_in_thread(s, job_set(3000, gate))
    assert not done.wait(NOT_YET_S)
    stopper = threading.Thread(target=lambda: s.stop(graceful=False, timeout_s=WAIT_S), daemon=True)
    stopper.start()
    assert done.wait(WAIT_S)
    gate.set()
    stopper.join(WAIT_S)


def test_the_bounds_are_configuration_keys() -> None:
    config = StreamingConfig.from_conf(
        {
            "dstream.streaming.pendingBatchesMax": "3",
            "dstream.streaming.generatorEventsMax": "7",
            "dstream.receiver.unallocated_records_max": "1000",
            "spark.streaming.backpressure.enabled": "true",
            "spark.streaming.backpressure.initialRate": "500",
        }
    )
    assert (config.scheduler.pending_batches_max, config.scheduler.generator_events_max) == (3, 7)
    assert config.receiver.unallocated_records_max == 1000
    assert (config.backpressure.enabled, config.backpressure.initial_rate_per_s) == (True, 500.0)
    assert (config.backpressure.proportional, config.backpressure.integral) == (1.0, 0.2)
    assert (config.backpressure.derivative, config.backpressure.min_rate_per_s) == (0.0, 100.0)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("dstream.streaming.pendingBatchesMax", "0"),
        ("dstream.streaming.generatorEventsMax", "many"),
        ("dstream.receiver.unallocated_records_max", "0"),
        ("spark.streaming.backpressure.enabled", "maybe"),
        ("spark.streaming.backpressure.pid.minRate", "0"),
        ("spark.streaming.backpressure.pid.integral", "-1"),
        ("spark.streaming.stopGracefullyOnShutdown", "sometimes"),
    ],
)
def test_bad_bounds_name_their_key_and_value(key: str, value: str) -> None:
    with pytest.raises(DStreamValueError, match=re.escape(key)) as raised:
        StreamingConfig.from_conf({key: value})
    assert repr(value) in str(raised.value)
