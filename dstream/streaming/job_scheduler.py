"""Jobs, job sets and the JobScheduler that runs them.

A batch's output operations become one `JobSet`; jobs of a batch run in order and batches run one
after another on one executor thread (Spark's `concurrentJobs = 1`). A job that raises is reported
on the listener bus (its `failureReason`) and to the error callback (which `awaitTermination`
re-raises); later batches still run.

What happens to a batch whose job failed is the failed-batch policy (the pure decision is in
dstream.streaming.failed_batch_policy; this class is its shell). `fail-stop`: the batch stays pending,
as in Spark, so that a recovered driver runs it again. `quarantine`: its failed jobs run again, here,
before any later batch, up to `failed_batch_attempts_max` attempts; then the `quarantiner` copies its
input to the dead-letter area, `StreamingListenerBatchQuarantined` is posted, the error is reported
and the batch is no longer pending (it completes, so cleanup moves past it). Without a quarantiner (no
checkpoint directory) or when the copy fails, the batch is reported the same way but stays pending.
Either way it is counted as processed for `wait_for_batch`.

Bound: at most `pending_batches_max` batches wait to run (`dstream.streaming.pendingBatchesMax`).
`submit_job_set` waits for room, so the JobGenerator (its only caller) stops generating, allocation
pauses, and the receivers' bound on unallocated records slows the producers. The wait ends at once
when the scheduler stops or `release_submitters` is called (a stopping generator).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dstream.clock import Clock
from dstream.config import FAIL_STOP
from dstream.rdd.rdd import RDD
from dstream.streaming.failed_batch_policy import FailedBatchAction, decide
from dstream.streaming.listener import (
    BatchInfo,
    OutputOperationInfo,
    StreamingListenerBatchCompleted,
    StreamingListenerBatchQuarantined,
    StreamingListenerBatchStarted,
    StreamingListenerBatchSubmitted,
    StreamingListenerBus,
    StreamingListenerOutputOperationCompleted,
    StreamingListenerOutputOperationStarted,
    StreamInputInfo,
)

if TYPE_CHECKING:
    from dstream.streaming.runtime import BatchQuarantiner

log = logging.getLogger(__name__)

# How many processed batch times are remembered for wait_for_batch; old ones are forgotten so a long
# run does not grow this set without bound.
PROCESSED_TIMES_MAX = 10_000
PENDING_BATCHES_MAX_DEFAULT = 4
# Quarantined batch times remembered for the metadata checkpoint (the quarantine directory is the record).
QUARANTINED_TIMES_MAX = 1000

ErrorCallback = Callable[[str, BaseException], None]
CompletionCallback = Callable[[int], None]


@dataclass
class Job:
    """One output operation of one batch: a closure over the batch's already generated RDD."""

    time_ms: int
    output_op_id: int
    func: Callable[[], object]
    name: str = "foreachRDD"
    start_ms: int | None = None
    end_ms: int | None = None
    error: BaseException | None = None
    failure_reason: str | None = None

    def __str__(self) -> str:
        return f"streaming job {self.time_ms} ms.{self.output_op_id}"

    def run(self, clock: Clock) -> None:
        """Run the closure once, keeping any exception instead of raising it."""
        self.start_ms = clock.time_ms()
        self.error = None
        self.failure_reason = None
        try:
            self.func()
        except Exception as exc:
            self.error = exc
            self.failure_reason = "".join(traceback.format_exception(exc))
        finally:
            self.end_ms = clock.time_ms()

    def info(self) -> OutputOperationInfo:
        """The job as listeners see it."""
        return OutputOperationInfo(
            batchTime=self.time_ms,
            id=self.output_op_id,
            name=self.name,
            description=str(self),
            startTime=self.start_ms,
            endTime=self.end_ms,
            failureReason=self.failure_reason,
        )


@dataclass
class JobSet:
    """The jobs generated for one batch time, and when the batch moved through the scheduler."""

    time_ms: int
    jobs: list[Job]
    input_infos: Mapping[int, StreamInputInfo]
    submission_ms: int
    processing_start_ms: int | None = None
    processing_end_ms: int | None = None
    failed: bool = field(default=False)
    input_rdds: Mapping[int, RDD[Any]] = field(default_factory=dict)
    attempts: int = 0

    def batch_info(self) -> BatchInfo:
        """The batch as listeners see it now."""
        return BatchInfo(
            batchTime=self.time_ms,
            streamIdToInputInfo=dict(self.input_infos),
            submissionTime=self.submission_ms,
            processingStartTime=self.processing_start_ms,
            processingEndTime=self.processing_end_ms,
            outputOperationInfos={job.output_op_id: job.info() for job in self.jobs},
        )


class JobScheduler:
    """Runs submitted job sets in submission order on one thread and reports their progress."""

    def __init__(
        self,
        clock: Clock,
        bus: StreamingListenerBus,
        on_error: ErrorCallback,
        on_batch_completion: CompletionCallback,
        pending_batches_max: int = PENDING_BATCHES_MAX_DEFAULT,
        failed_batch_policy: str = FAIL_STOP,
        failed_batch_attempts_max: int = 1,
    ) -> None:
        self._clock = clock
        self.pending_batches_max = pending_batches_max
        # Set by the context at start from `dstream.streaming.failedBatchPolicy` (see the module docstring).
        self.failed_batch_policy = failed_batch_policy
        self.failed_batch_attempts_max = failed_batch_attempts_max
        self.quarantiner: BatchQuarantiner | None = None
        self._quarantined: list[int] = []
        self._submitters_released = False
        self._bus = bus
        self._on_error = on_error
        self._on_batch_completion = on_batch_completion
        self._cond = threading.Condition()
        self._queue: deque[JobSet] = deque()
        self._pending: dict[int, JobSet] = {}
        self._processed: set[int] = set()
        self._running: JobSet | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the executor thread."""
        with self._cond:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="streaming-job-executor", daemon=True)
            self._thread.start()

    def submit_job_set(self, job_set: JobSet) -> None:
        """Queue a batch's jobs. A batch without jobs still passes through the queue, so batches are
        processed in time order, but it posts no events (like Spark).

        Waits while `pending_batches_max` batches are queued (see the module docstring)."""
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    self._stopping or self._submitters_released or len(self._queue) < self.pending_batches_max
                )
            )
            self._pending[job_set.time_ms] = job_set
            if self._stopping:
                log.warning("scheduler is stopping; batch %d ms not run", job_set.time_ms)
                return
            self._queue.append(job_set)
            self._cond.notify_all()
        if job_set.jobs:
            self._bus.post(StreamingListenerBatchSubmitted(job_set.batch_info()))

    def release_submitters(self) -> None:
        """Let submits stop waiting for room (the generator is stopping; at most one batch goes over)."""
        with self._cond:
            self._submitters_released = True
            self._cond.notify_all()

    def queued_batches(self) -> int:
        """Batches submitted and not started yet."""
        with self._cond:
            return len(self._queue)

    def report_error(self, message: str, error: BaseException) -> None:
        """Keep an error for awaitTermination (job failures and job generation failures)."""
        log.error("%s: %r", message, error)
        self._on_error(message, error)

    def mark_processed(self, time_ms: int) -> None:
        """Count a batch as processed: its jobs and completion handling ran, or its generation failed."""
        with self._cond:
            self._mark_processed_locked(time_ms)

    def _mark_processed_locked(self, time_ms: int) -> None:
        self._processed.add(time_ms)
        if len(self._processed) > PROCESSED_TIMES_MAX:
            self._processed.discard(min(self._processed))
        self._cond.notify_all()

    def pending_times(self) -> list[int]:
        """Batches submitted and not successfully completed, oldest first (for metadata checkpoints)."""
        with self._cond:
            return sorted(self._pending)

    def quarantined_times(self) -> list[int]:
        """Batches this scheduler quarantined (the newest `QUARANTINED_TIMES_MAX`), oldest first."""
        with self._cond:
            return list(self._quarantined)

    def is_processed(self, time_ms: int) -> bool:
        """Whether the batch at `time_ms` has finished running (successfully or not)."""
        with self._cond:
            return time_ms in self._processed

    def wait_for_batch(self, time_ms: int, timeout_s: float) -> bool:
        """Wait until the batch at `time_ms` has been processed; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: time_ms in self._processed, timeout=timeout_s)

    def wait_until_idle(self, timeout_s: float) -> bool:
        """Wait until no batch is queued or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and self._running is None, timeout=timeout_s)

    def stop(self, graceful: bool, timeout_s: float) -> None:
        """Stop the executor thread.

        Args:
            graceful: run every queued batch first; otherwise drop the queued ones (they stay pending).
            timeout_s: how long to wait for the queued (graceful) or the running batch.
        """
        if graceful:
            self.wait_until_idle(timeout_s)
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s if graceful else min(timeout_s, 2.0))

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or bool(self._queue))
                if self._stopping:
                    return
                job_set = self._queue.popleft()
                self._running = job_set
                self._cond.notify_all()  # a submitter waiting for room
            try:
                self._run_job_set(job_set)
            finally:
                with self._cond:
                    self._running = None
                    if not job_set.failed:
                        self._pending.pop(job_set.time_ms, None)
            # "Processed" includes the completion handling (metadata clearing, the completion
            # checkpoint), so a waiter never sees a batch done while its cleanup is still running.
            try:
                if not job_set.failed:
                    self._on_batch_completion(job_set.time_ms)
            finally:
                self.mark_processed(job_set.time_ms)

    def _run_job_set(self, job_set: JobSet) -> None:
        if not job_set.jobs:
            return
        job_set.processing_start_ms = self._clock.time_ms()
        self._bus.post(StreamingListenerBatchStarted(job_set.batch_info()))
        to_run = list(job_set.jobs)
        while True:
            job_set.attempts += 1
            to_run = [job for job in to_run if not self._run_job(job)]
            action = decide(
                self.failed_batch_policy, bool(to_run), job_set.attempts, self.failed_batch_attempts_max
            )
            if action is not FailedBatchAction.RETRY:
                break
            log.warning(
                "batch %d ms: %d job(s) failed on attempt %d of %d; running them again",
                job_set.time_ms,
                len(to_run),
                job_set.attempts,
                self.failed_batch_attempts_max,
            )
        job_set.processing_end_ms = self._clock.time_ms()
        self._bus.post(StreamingListenerBatchCompleted(job_set.batch_info()))
        if action is FailedBatchAction.DONE:
            return
        job_set.failed = True
        if action is FailedBatchAction.KEEP_PENDING:
            return  # fail-stop: each error was reported as its job failed, as before the policy existed
        job_set.failed = not self._quarantine(job_set, to_run)
        for job in to_run:
            assert job.error is not None
            self.report_error(f"Error running job {job}", job.error)

    def _run_job(self, job: Job) -> bool:
        """Run one job with its events; True if it succeeded."""
        job.start_ms = self._clock.time_ms()
        self._bus.post(StreamingListenerOutputOperationStarted(job.info()))
        job.run(self._clock)
        self._bus.post(StreamingListenerOutputOperationCompleted(job.info()))
        if job.error is not None and self.failed_batch_policy == FAIL_STOP:
            self.report_error(f"Error running job {job}", job.error)
        return job.error is None

    def _quarantine(self, job_set: JobSet, failed_jobs: list[Job]) -> bool:
        """Copy the batch's input to the quarantine; True if it is there (the batch stops pending)."""
        error = "\n".join(job.failure_reason or repr(job.error) for job in failed_jobs)
        location: str | None = None
        counts: Mapping[int, int] = {sid: info.numRecords() for sid, info in job_set.input_infos.items()}
        if self.quarantiner is None:
            log.error(
                "batch %d ms failed %d attempts; without a checkpoint directory its input cannot be "
                "quarantined, so it stays pending",
                job_set.time_ms,
                job_set.attempts,
            )
        else:
            try:
                receipt = self.quarantiner.quarantine(
                    job_set.time_ms, job_set.input_rdds, error, job_set.attempts
                )
            except Exception as exc:
                self.report_error(f"could not quarantine batch {job_set.time_ms} ms; it stays pending", exc)
            else:
                location, counts = receipt.location, receipt.num_records
                log.error(
                    "batch %d ms failed %d attempts; quarantined %s records at %s%s",
                    job_set.time_ms,
                    job_set.attempts,
                    dict(counts),
                    location,
                    "" if receipt.newly_written else " (already there from an earlier run)",
                )
                with self._cond:
                    self._quarantined.append(job_set.time_ms)
                    del self._quarantined[:-QUARANTINED_TIMES_MAX]
        self._bus.post(
            StreamingListenerBatchQuarantined(job_set.time_ms, job_set.attempts, error, location, counts)
        )
        return location is not None
