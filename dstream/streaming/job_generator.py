"""The RecurringTimer and the JobGenerator: turn clock ticks into batches of jobs.

The timer fires at start, start + batch, ... on an injected clock (tests move a ManualClock). Its
first tick is the first multiple of the batch duration strictly after now, and zeroTime is one batch
before it, as in Spark's RecurringTimer: with ManualClock(0) and a 1 s batch the batches are
1000, 2000, ... The generator runs one event loop thread that generates jobs for a tick, clears the
metadata of completed batches and calls the checkpoint hook, so the graph is only touched from there.

Generating batch T is Spark's JobGenerator.generateJobs: (1) the block allocator (the receivers'
tracker) durably allocates every receiver stream's unallocated blocks to T, whether or not a stream
is computed at T (a stream read through a window is not); (2) the graph's output streams generate
their jobs; (3) the job set goes to the JobScheduler with each input stream's records of T; (4) the
checkpoint hook writes a metadata checkpoint. The generator is also the one place that decides when
received blocks are cleaned (`clean_received_blocks`): after a batch completes when there is no
checkpoint, once a metadata checkpoint no longer needs them when there is one.

Bound: at most `generator_events_max` batch ticks wait in the event queue
(`dstream.streaming.generatorEventsMax`); the timer waits for room (waking when it is stopped) and then
fires the ticks it missed, so no batch time is skipped. Completion events are not bounded here: each
comes from a batch the scheduler ran, and the scheduler holds at most `pending_batches_max`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from dstream.clock import Clock
from dstream.errors import CleanupDeferredError, DStreamStateError
from dstream.streaming.graph import DStreamGraph
from dstream.streaming.job_scheduler import JobScheduler, JobSet
from dstream.streaming.restart_plan import restart_plan
from dstream.streaming.runtime import BlockAllocator

log = logging.getLogger(__name__)

# A metadata-checkpoint hook: (batch_ms, clear_checkpoint_data_later). The checkpoint issue sets it.
CheckpointHook = Callable[[int, bool], None]


class RecurringTimer:
    """Calls `callback(time_ms)` at every multiple of `period_ms` from the start time on."""

    def __init__(self, clock: Clock, period_ms: int, callback: Callable[[int], None], name: str) -> None:
        self._clock = clock
        self._period_ms = period_ms
        self._callback = callback
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_ms: int | None = None
        self.last_fired_ms: int | None = None

    def get_start_time(self) -> int:
        """The first multiple of the period strictly after the clock's current time."""
        return (self._clock.time_ms() // self._period_ms + 1) * self._period_ms

    def get_restart_time(self, original_start_ms: int) -> int:
        """The next tick after now on the grid of an earlier run that started at `original_start_ms`."""
        elapsed = self._clock.time_ms() - original_start_ms
        return (elapsed // self._period_ms + 1) * self._period_ms + original_start_ms

    def start(self, start_ms: int) -> None:
        """Begin firing at `start_ms`."""
        self._next_ms = start_ms
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called."""
        return self._stop.is_set()

    def stop(self, timeout_s: float = 10.0, fire_due: bool = False) -> int | None:
        """Stop firing; returns the last time fired (None if it never fired).

        With `fire_due`, ticks the clock has already reached but the thread had not fired yet are
        fired here first (a graceful stop generates every batch whose time has come).
        """
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        if fire_due and self._next_ms is not None:
            while self._next_ms <= self._clock.time_ms():
                self._callback(self._next_ms)
                self.last_fired_ms = self._next_ms
                self._next_ms += self._period_ms
        return self.last_fired_ms

    def fire_next(self) -> int | None:
        """After `stop`: fire the next tick now, ahead of its time; returns it (None if never started)."""
        if self._next_ms is None:
            return None
        fired = self._next_ms
        self._callback(fired)
        self.last_fired_ms = fired
        self._next_ms += self._period_ms
        return fired

    def _loop(self) -> None:
        assert self._next_ms is not None
        while not self._stop.is_set():
            self._clock.wait_until(self._next_ms, self._stop)
            if self._stop.is_set():
                return
            self._callback(self._next_ms)
            self.last_fired_ms = self._next_ms
            self._next_ms += self._period_ms


_STOP = ("stop", 0)
GENERATOR_EVENTS_MAX_DEFAULT = 100
_STOP_CHECK_S = 0.1  # a timer waiting for room in the event queue rechecks for stop this often


class JobGenerator:
    """Generates a JobSet per batch time from the graph and hands it to the JobScheduler."""

    def __init__(
        self,
        graph: DStreamGraph,
        scheduler: JobScheduler,
        clock: Clock,
        batch_ms: int,
        generator_events_max: int = GENERATOR_EVENTS_MAX_DEFAULT,
    ) -> None:
        self._graph = graph
        self.generator_events_max = generator_events_max
        self._queued_ticks = 0
        self._scheduler = scheduler
        self._clock = clock
        self._batch_ms = batch_ms
        self._events: queue.Queue[tuple[str, int]] = queue.Queue()
        self._timer = RecurringTimer(clock, batch_ms, self._on_tick, "streaming-job-generator-timer")
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._in_flight = 0
        # Plugged in by the StreamingContext before start: the checkpoint coordinator's hook and the
        # receivers' block tracker.
        self.checkpoint_hook: CheckpointHook | None = None
        self.block_allocator: BlockAllocator | None = None
        self.last_generated_ms: int | None = None
        self.last_processed_ms: int | None = None

    def start(self, on_zero_time: Callable[[int], None] | None = None) -> int:
        """Start the event loop and the timer; returns the first batch time.

        Args:
            on_zero_time: called with the graph's zero time once the graph has started and before any
                thread of the generator runs (the context writes its initial metadata checkpoint
                there); if it raises, no thread has been started.
        """
        if self._thread is not None:
            raise DStreamStateError("JobGenerator already started")
        start_ms = self._timer.get_start_time()
        # The graph validates itself here: if it raises, no thread has been started.
        self._graph.start(start_ms - self._batch_ms)
        if on_zero_time is not None:
            on_zero_time(start_ms - self._batch_ms)
        self._thread = threading.Thread(target=self._event_loop, name="streaming-job-generator", daemon=True)
        self._thread.start()
        self._timer.start(start_ms)
        return start_ms

    def restart(self, checkpoint_ms: int, pending_ms: tuple[int, ...]) -> int:
        """Restart from a checkpoint: re-run pending and missed batches, then resume the timer.

        The plan is `dstream.streaming.restart_plan.restart_plan` (pure); the batches are generated in time
        order on the event loop before the first new tick. Returns the restart time.
        """

        if self._thread is not None:
            raise DStreamStateError("JobGenerator already started")
        zero_ms = self._graph.zero_time_ms
        if zero_ms is None:
            raise DStreamStateError("cannot restart a graph that was never started (no zero time)")
        plan = restart_plan(checkpoint_ms, pending_ms, zero_ms, self._batch_ms, self._clock.time_ms())
        self._graph.restart()
        log.info("restarting at %d ms; re-running batches %s", plan.restart_ms, plan.rerun_ms)
        self._thread = threading.Thread(target=self._event_loop, name="streaming-job-generator", daemon=True)
        self._thread.start()
        for time_ms in plan.rerun_ms:
            self._post(("generate", time_ms))
        self._timer.start(plan.restart_ms)
        return plan.restart_ms

    def on_batch_completion(self, time_ms: int) -> None:
        """Called by the scheduler when every job of a batch succeeded."""
        self._post(("clear_metadata", time_ms))

    def stop(self, graceful: bool, timeout_s: float) -> None:
        """Stop the timer, then (if graceful) finish what is queued, then the event loop."""
        if not graceful:  # a generator waiting for room in the scheduler must not hold up the stop
            self._scheduler.release_submitters()
        self._timer.stop(timeout_s, fire_due=graceful)
        if graceful:
            self._wait_idle(timeout_s)
            self._generate_final_batch(timeout_s)
            self._scheduler.wait_until_idle(timeout_s)
            self._wait_idle(timeout_s)
        self._events.put(_STOP)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _generate_final_batch(self, timeout_s: float) -> None:
        """A graceful stop stops the receivers first; what they stored after the last due tick would be
        in no batch, so one more batch, generated ahead of its time, takes it (Spark waits for the next
        tick instead: the same batch, without waiting on a clock that may be manual)."""
        allocator = self.block_allocator
        if allocator is not None and allocator.has_unallocated_received_blocks():
            fired = self._timer.fire_next()
            log.info("graceful stop: batch %s ms takes the blocks stored after the last tick", fired)
            self._wait_idle(timeout_s)

    def generate_jobs(self, time_ms: int) -> None:
        """Generate and submit the jobs of batch `time_ms` (runs on the event loop thread)."""
        try:
            if self.block_allocator is not None:
                self.block_allocator.allocate_blocks_to_batch(time_ms)
            jobs = self._graph.generate_jobs(time_ms)
            infos = self._graph.input_infos(time_ms)
            input_rdds = self._graph.input_rdds(time_ms)
        except Exception as exc:
            self._scheduler.report_error(f"Error generating jobs for time {time_ms} ms", exc)
            self._scheduler.mark_processed(time_ms)
        else:
            job_set = JobSet(time_ms, jobs, infos, self._clock.time_ms(), input_rdds=input_rdds)
            self._scheduler.submit_job_set(job_set)
        with self._idle:
            self.last_generated_ms = time_ms
            self._idle.notify_all()
        self._checkpoint(time_ms, clear_later=False)

    def wait_generated(self, time_ms: int, timeout_s: float) -> bool:
        """Wait until the batch at `time_ms` (or a later one) has been generated; False on timeout."""
        with self._idle:
            return self._idle.wait_for(
                lambda: self.last_generated_ms is not None and self.last_generated_ms >= time_ms,
                timeout=timeout_s,
            )

    def _on_tick(self, time_ms: int) -> None:
        with self._idle:
            while self._queued_ticks >= self.generator_events_max and not self._timer.stopping:
                self._idle.wait(_STOP_CHECK_S)  # woken when a tick is taken; rechecks for stop
            self._queued_ticks += 1
        self._post(("tick", time_ms))

    def _post(self, event: tuple[str, int]) -> None:
        with self._idle:
            self._in_flight += 1
        self._events.put(event)

    def _wait_idle(self, timeout_s: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout_s)

    def _event_loop(self) -> None:
        while True:
            event = self._events.get()
            if event is _STOP:
                return
            try:
                self._process(event)
            except Exception:
                log.exception("job generator failed on %r", event)
            finally:
                with self._idle:
                    self._in_flight -= 1
                    self._idle.notify_all()

    def _process(self, event: tuple[str, int]) -> None:
        kind, time_ms = event
        if kind == "tick":
            with self._idle:
                self._queued_ticks -= 1
                self._idle.notify_all()
            self.generate_jobs(time_ms)
        elif kind == "generate":
            self.generate_jobs(time_ms)
        elif kind == "clear_metadata":
            self._graph.clear_metadata(time_ms)
            self.last_processed_ms = time_ms
            if self.checkpoint_hook is None:
                # Nothing will re-run these batches: their blocks can go once no stream remembers them.
                self.clean_received_blocks(time_ms - self._graph.max_input_remember_ms())
            self._checkpoint(time_ms, clear_later=True)

    def clean_received_blocks(self, threshold_ms: int) -> None:
        """Forget received blocks and batches before `threshold_ms` (the only caller of the cleanup).

        Without a checkpoint the generator calls it after each completed batch; with one, the checkpoint
        coordinator calls it once a durable metadata checkpoint no longer needs anything older.
        """
        if self.block_allocator is None or threshold_ms <= 0:
            return
        try:
            self.block_allocator.cleanup_old_blocks_and_batches(threshold_ms)
        except CleanupDeferredError as exc:
            log.info("%s (retried at the next batch)", exc)
        except Exception:
            log.warning(
                "received-block cleanup before %d ms failed (retried later)", threshold_ms, exc_info=True
            )

    def _checkpoint(self, time_ms: int, clear_later: bool) -> None:
        if self.checkpoint_hook is not None:
            self.checkpoint_hook(time_ms, clear_later)
