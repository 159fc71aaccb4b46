"""JobScheduler, RecurringTimer and JobGenerator on a ManualClock, without RDDs."""

from __future__ import annotations

import threading

from dstream.clock import ManualClock
from dstream.streaming.job_generator import JobGenerator, RecurringTimer
from dstream.streaming.job_scheduler import Job, JobScheduler, JobSet
from dstream.streaming.listener import StreamingListener, StreamingListenerBus

WAIT_S = 10.0


class Recorder(StreamingListener):
    def __init__(self):
        self.events = []

    def onBatchSubmitted(self, e):
        self.events.append(("submitted", e.batchInfo().batchTime().milliseconds()))

    def onBatchStarted(self, e):
        self.events.append(("started", e.batchInfo().batchTime().milliseconds()))

    def onBatchCompleted(self, e):
        self.events.append(("completed", e.batchInfo().batchTime().milliseconds(), e.batchInfo()))

    def onOutputOperationStarted(self, e):
        self.events.append(
            ("op-started", e.outputOperationInfo().batchTime().milliseconds(), e.outputOperationInfo().id())
        )

    def onOutputOperationCompleted(self, e):
        info = e.outputOperationInfo()
        self.events.append(("op-completed", info.batchTime().milliseconds(), info.id(), info.failureReason()))


def make_scheduler(clock):
    bus = StreamingListenerBus()
    errors, completed = [], []
    scheduler = JobScheduler(clock, bus, lambda msg, e: errors.append((msg, e)), completed.append)
    return scheduler, bus, errors, completed


def test_jobs_run_in_order_and_a_failure_does_not_stop_later_batches():
    clock = ManualClock(0)
    scheduler, bus, errors, completed = make_scheduler(clock)
    recorder = Recorder()
    bus.add_listener(recorder)
    bus.start()
    scheduler.start()
    ran = []

    def boom():
        ran.append((2000, 0))
        raise KeyError("boom")

    scheduler.submit_job_set(
        JobSet(
            1000,
            [Job(1000, 0, lambda: ran.append((1000, 0))), Job(1000, 1, lambda: ran.append((1000, 1)))],
            {},
            0,
        )
    )
    scheduler.submit_job_set(
        JobSet(2000, [Job(2000, 0, boom), Job(2000, 1, lambda: ran.append((2000, 1)))], {}, 0)
    )
    scheduler.submit_job_set(JobSet(3000, [Job(3000, 0, lambda: ran.append((3000, 0)))], {}, 0))
    assert scheduler.wait_for_batch(3000, WAIT_S)
    assert ran == [(1000, 0), (1000, 1), (2000, 0), (2000, 1), (3000, 0)]
    assert completed == [1000, 3000]  # the failed batch is not completed ...
    assert scheduler.pending_times() == [2000]  # ... it stays pending
    assert [msg for msg, _ in errors] == ["Error running job streaming job 2000 ms.0"]
    assert isinstance(errors[0][1], KeyError)
    assert bus.wait_until_empty(WAIT_S)
    # Events of one batch are in order; a later batch's submission may interleave with them.
    kinds = [e[:2] for e in recorder.events if e[1] == 1000]
    assert kinds == [
        ("submitted", 1000),
        ("started", 1000),
        ("op-started", 1000),
        ("op-completed", 1000),
        ("op-started", 1000),
        ("op-completed", 1000),
        ("completed", 1000),
    ]
    failures = [e[3] for e in recorder.events if e[0] == "op-completed" and e[1] == 2000]
    assert failures[0] is not None and "KeyError: 'boom'" in failures[0] and failures[1] is None
    scheduler.stop(graceful=False, timeout_s=WAIT_S)
    bus.stop()


def test_batch_info_delays_come_from_the_clock():
    clock = ManualClock(5000)
    scheduler, bus, _, _ = make_scheduler(clock)
    recorder = Recorder()
    bus.add_listener(recorder)
    bus.start()

    def slow_job():
        clock.advance(250)  # the job "takes" 250 ms of clock time

    job_set = JobSet(5000, [Job(5000, 0, slow_job)], {}, submission_ms=4900)
    scheduler.submit_job_set(job_set)
    clock.advance(40)  # submitted at 4900, starts at 5040
    scheduler.start()
    assert scheduler.wait_for_batch(5000, WAIT_S)
    assert bus.wait_until_empty(WAIT_S)
    info = next(e[2] for e in recorder.events if e[0] == "completed")
    assert (info.submissionTime(), info.processingStartTime(), info.processingEndTime()) == (4900, 5040, 5290)
    assert (info.schedulingDelay(), info.processingDelay(), info.totalDelay()) == (140, 250, 390)
    assert info.outputOperationInfos()[0].duration() == 250
    scheduler.stop(graceful=True, timeout_s=WAIT_S)
    bus.stop()


def test_recurring_timer_fires_on_the_grid_of_the_manual_clock():
    clock = ManualClock(1234)
    fired, event = [], threading.Event()

    def tick(t):
        fired.append(t)
        if len(fired) == 4:
            event.set()

    timer = RecurringTimer(clock, 500, tick, "test-timer")
    start = timer.get_start_time()
    assert start == 1500
    timer.start(start)
    clock.set_time(3000)
    assert event.wait(WAIT_S)
    assert timer.stop() == 3000
    assert fired == [1500, 2000, 2500, 3000]
    assert timer.get_restart_time(1500) == 3500


def test_timer_stop_fires_due_ticks_only_when_asked():
    clock = ManualClock(0)
    fired = []
    timer = RecurringTimer(clock, 1000, fired.append, "t")
    timer.start(1000)
    timer.stop()
    clock.set_time(2500)
    assert timer.stop(fire_due=True) == 2000
    assert fired == [1000, 2000]


class FakeGraph:
    def __init__(self):
        self.started_at = None
        self.generated = []
        self.cleared = []

    def start(self, zero):
        self.started_at = zero

    def generate_jobs(self, t):
        self.generated.append(t)
        if t == 2000:
            raise RuntimeError("cannot generate")
        return [Job(t, 0, lambda: None)]

    def input_infos(self, t):
        return {}

    def input_rdds(self, t):
        return {}

    def clear_metadata(self, t):
        self.cleared.append(t)


def test_job_generator_first_batch_generation_errors_and_cleanup():
    clock = ManualClock(0)
    graph = FakeGraph()
    scheduler, _bus, errors, _ = make_scheduler(clock)
    generator = JobGenerator(graph, scheduler, clock, 1000)
    scheduler._on_batch_completion = generator.on_batch_completion
    hooks = []
    generator.checkpoint_hook = lambda t, later: hooks.append((t, later))
    scheduler.start()
    assert generator.start() == 1000
    assert graph.started_at == 0
    clock.set_time(3000)
    assert scheduler.wait_for_batch(3000, WAIT_S)
    generator.stop(graceful=True, timeout_s=WAIT_S)
    scheduler.stop(graceful=True, timeout_s=WAIT_S)
    assert graph.generated == [1000, 2000, 3000]
    assert [m for m, _ in errors] == ["Error generating jobs for time 2000 ms"]
    assert graph.cleared == [1000, 3000]
    assert (1000, False) in hooks and (1000, True) in hooks and (2000, False) in hooks
