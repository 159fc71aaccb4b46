"""The checkpoint coordinator: one per started StreamingContext that has a checkpoint directory.

It ties the engine to the checkpoint package:

- at start: refuses queueStream (not replayable, as in Spark), test-serializes the graph so a
  non-picklable closure fails at start and not later in the writer (SPARK-7767), takes the driver
  lease (a second driver on the directory fails fast), starts the background metadata writer;
- for a fresh (not recovered) context, once its graph has a zero time and before any receiver
  starts: writes the initial metadata checkpoint and waits until it is durable
  (`write_initial_checkpoint`), so that a restart always recovers and replays the tracker's WAL;
- `checkpoint_hook(T, completed)` runs on the JobGenerator thread after batch T is generated and
  after it completed: it submits the batch's RDD data checkpoints (after completion), then snapshots
  the graph (cloudpickle, a consistent view because only this thread changes it) with the pending
  batches and the committed data checkpoint references, and queues the metadata checkpoint;
- when a metadata checkpoint is durable the writer has already deleted what retention allows
  (old metadata and RDD directories); the coordinator then cleans the receivers' tracker events
  and WAL segments before the threshold every kept checkpoint agrees on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import deque
from typing import Any

import cloudpickle

from checkpoint.errors import CheckpointError, DriverLeaseError
from checkpoint.fingerprint import CodeFingerprint
from checkpoint.lease import DriverLease, acquire_driver_lease
from checkpoint.location import capability_of, resolve
from checkpoint.metadata import DataCheckpointRef, MetadataCheckpoint
from checkpoint.metadata_writer import MetadataCheckpointWriter, WrittenInfo
from dstream.errors import DStreamError, DStreamStateError, DStreamValueError
from dstream.recovery.data_checkpoints import RddCheckpointer
from dstream.recovery.fingerprints import graph_fingerprint
from dstream.streaming.inputs import QueueInputDStream
from dstream.streaming.listener import StreamingListenerCheckpointFailed, StreamingListenerCheckpointWritten
from dstream.streaming.runtime import StreamingRuntime

log = logging.getLogger(__name__)

GRAPH_BYTES_WARN = 8 * 2**20  # a graph this large in every metadata checkpoint is almost always a mistake

STOP_TIMEOUT_S = 30.0
INITIAL_CHECKPOINT_TIMEOUT_S = 60.0  # the writer's retries of a slow store fit well inside it
QUEUE_STREAM_ERROR = (
    "queueStream doesn't support checkpointing. Please don't use queueStream when checkpointing is "
    "enabled (its queued items cannot be replayed after a restart)."
)


def _conf_strings(sc: Any) -> dict[str, str]:
    # The Context's configuration as the strings a restarted driver rebuilds its Context from.
    get_conf = getattr(sc, "getConf", None)
    return {str(k): str(v) for k, v in get_conf().getAll()} if get_conf is not None else {}


class CheckpointCoordinator:
    """Writes a StreamingContext's checkpoints and drives cleanup (see the module docstring)."""

    def __init__(self, runtime: StreamingRuntime) -> None:
        if runtime.checkpoint is None:
            raise DStreamValueError("a checkpoint coordinator needs a checkpoint directory")
        self._runtime = runtime
        self._location = runtime.checkpoint
        self._dir: str = runtime.checkpoint.url
        self._so: dict[str, Any] = dict(runtime.checkpoint.storage_options)
        self._settings = runtime.config.checkpoint
        self.rdds = RddCheckpointer(
            self._location.rdd_dir,
            self._so,
            asynchronous=self._settings.asynchronous,
            on_error=self._on_rdd_error,
            on_committed=self._on_rdd_committed,
            fence=lambda: runtime.fence(),  # read at each write: start() installs the lease's
        )
        self._lease: DriverLease | None = None
        self._writer: MetadataCheckpointWriter | None = None
        self._fingerprint: CodeFingerprint | None = None
        self._cond = threading.Condition()
        self._queued: deque[tuple[int, bool]] = deque()
        self.completed_checkpoint_ms: int | None = None
        self.metadata_written = 0
        self._failed_n = 0
        self._last_failure: BaseException | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Validate the graph, take the driver lease, start the writer (raises on any failure)."""
        graph = self._runtime.graph
        if not self._settings.allow_queue_stream and any(
            isinstance(s, QueueInputDStream) for s in graph.input_streams
        ):
            raise DStreamValueError(QUEUE_STREAM_ERROR)
        try:
            graph_bytes = len(cloudpickle.dumps(graph))
        except Exception as exc:
            raise DStreamValueError(
                f"the DStream graph cannot be serialized for checkpointing ({type(exc).__name__}: {exc}); "
                "a function used by a DStream operation refers to something that cannot be pickled"
            ) from exc
        if graph_bytes > GRAPH_BYTES_WARN:
            # Functions and classes defined in __main__ are pickled by value, with the globals they
            # reach: a large global ends up in every metadata checkpoint, twice per batch.
            log.warning(
                "the DStream graph pickles to %.1f MiB and is written into every metadata checkpoint; "
                "a function or class used by the pipeline probably reaches a large object (code defined "
                "in __main__ is pickled by value with the globals it uses): move it to an importable "
                "module or load the data inside the function",
                graph_bytes / 2**20,
            )
        self._fingerprint = graph_fingerprint(graph)
        owner = f"{socket.gethostname()}:{os.getpid()}"
        self._lease = acquire_driver_lease(
            self._dir,
            owner,
            storage_options=self._so,
            lease_timeout_s=self._settings.lease_timeout_s,
            wait_timeout_s=self._settings.lease_wait_s,
        )
        self._runtime.fence = self._lease.ensure_held
        try:
            fs, _ = resolve(self._dir, self._so)
            if capability_of(fs) != "local":
                self._lease.renew_every(self._settings.lease_timeout_s / 4, self._on_lease_lost)
            self._writer = MetadataCheckpointWriter(
                self._dir,
                storage_options=self._so,
                keep_n=self._settings.keep_n,
                on_written=self._on_written,
                on_failed=self._on_failed,
                fence=self._lease.check,
                live_runs=(self._runtime.sc.run_id,),
            ).start()
        except BaseException:
            self._lease.release()
            raise

    def write_initial_checkpoint(self, zero_ms: int, timeout_s: float = INITIAL_CHECKPOINT_TIMEOUT_S) -> None:
        """Write the initial metadata checkpoint (the graph at its zero time) and wait until it is durable.

        A fresh context calls it once its graph has started and before any receiver starts or any batch
        runs, so that nothing is acknowledged before a checkpoint exists from which a restart recovers
        (and replays the tracker's WAL) instead of starting anew. The checkpoint is that of batch
        `zero_ms`, generation (not completion), with no pending batches: a restart re-runs every batch
        time after the zero time up to now (`restart_plan`).

        Raises:
            DStreamError: the checkpoint could not be published (after the writer's retries) or was not
                handled within `timeout_s`; the message names the directory and the cause.
        """
        if self._writer is None:
            raise DStreamStateError("the checkpoint coordinator has not been started")
        ckpt = self.snapshot(zero_ms, completed=False)
        with self._cond:
            self._queued.append((zero_ms, False))
            written, failed = self.metadata_written, self._failed_n
        try:
            self._writer.write(ckpt)
            self._writer.flush(timeout_s)
        except CheckpointError as exc:
            raise DStreamError(
                f"cannot start: the initial metadata checkpoint could not be written to {self._dir}: {exc}"
            ) from exc
        with self._cond:
            if self.metadata_written > written:
                return
            cause = self._last_failure if self._failed_n > failed else None
        raise DStreamError(
            f"cannot start: the initial metadata checkpoint could not be written to {self._dir}: {cause!r}"
        ) from cause

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Finish running data checkpoints and queued metadata checkpoints, then release the lease."""
        self.rdds.stop(timeout_s)
        try:
            if self._writer is not None:
                self._writer.stop(timeout_s)
        finally:
            if self._lease is not None:
                self._lease.release()
                self._lease = None

    # -- the generator thread's hook -------------------------------------------------------------------

    def checkpoint_hook(self, time_ms: int, completed: bool) -> None:
        """After batch `time_ms` was generated (completed=False) or completed (True)."""
        if completed:
            self.rdds.on_batch_completed(time_ms)
        if self._writer is None:
            return
        try:
            ckpt = self.snapshot(time_ms, completed)
        except Exception as exc:  # e.g. a receiver or closure that became unpicklable while running
            self._report(StreamingListenerCheckpointFailed(time_ms, "metadata", self._dir, repr(exc)))
            self._runtime.report_error(f"metadata checkpoint of batch {time_ms} ms failed", exc)
            return
        with self._cond:
            self._queued.append((time_ms, completed))
        try:
            self._writer.write(ckpt)
        except CheckpointError as exc:
            with self._cond:
                self._queued.pop()
            self._report(StreamingListenerCheckpointFailed(time_ms, "metadata", self._dir, repr(exc)))
            self._runtime.report_error(f"metadata checkpoint of batch {time_ms} ms failed", exc)

    def snapshot(self, time_ms: int, completed: bool) -> MetadataCheckpoint:
        """The metadata checkpoint of the context as it is now (call on the generator thread)."""
        runtime, graph = self._runtime, self._runtime.graph
        refs = self.rdds.committed_refs()
        pending = tuple(runtime.scheduler.pending_times())
        last_generated = runtime.generator.last_generated_ms
        sc = runtime.sc
        return MetadataCheckpoint(
            batch_ms=time_ms,
            graph_blob=cloudpickle.dumps(graph),
            pending_batches=pending,
            stream_ids=tuple(str(s._id) for s in graph.streams),
            data_checkpoints=refs,
            master=str(getattr(sc, "master", "")),
            app_name=str(getattr(sc, "appName", "")),
            config=_conf_strings(sc),
            fingerprint=self._fingerprint,
            wal_needed_from_ms=self._wal_needed_from(time_ms, refs, pending),
            extra={
                "last_generated_ms": max(time_ms, last_generated or time_ms),
                "completed": completed,
                "batch_duration_ms": graph.batch_ms,
                "zero_time_ms": graph.zero_time_ms,
                "setup_fingerprint": runtime.setup_fingerprint,
                "quarantined_batches": runtime.scheduler.quarantined_times(),
            },
        )

    def _wal_needed_from(
        self, time_ms: int, refs: tuple[DataCheckpointRef, ...], pending: tuple[int, ...]
    ) -> int:
        # A restart recomputes stateful streams from their newest data checkpoint and re-runs pending
        # batches; without a reference for a must-checkpoint stream, everything is still needed.
        referenced = {int(r.stream_id) for r in refs}
        needs_state = [s._id for s in self._runtime.graph.streams if s._checkpoint_ms is not None]
        if any(sid not in referenced for sid in needs_state):
            return 0
        remember_ms: int = self._runtime.graph.max_remember_ms()
        candidates = [time_ms - remember_ms, *(r.batch_ms for r in refs), *pending]
        return max(0, min(candidates))

    # -- writer-thread callbacks -----------------------------------------------------------------------

    def _pop_queued(self) -> tuple[int, bool]:
        with self._cond:
            item = self._queued.popleft() if self._queued else (0, False)
            return item

    def _on_written(self, batch_ms: int, info: WrittenInfo) -> None:
        _, completed = self._pop_queued()
        self._report(StreamingListenerCheckpointWritten(batch_ms, "metadata", info.url))
        if info.wal_clean_before_ms is not None and info.wal_clean_before_ms > 0:
            self._clean_receivers(info.wal_clean_before_ms)
        with self._cond:
            self.metadata_written += 1
            if completed and (
                self.completed_checkpoint_ms is None or batch_ms > self.completed_checkpoint_ms
            ):
                self.completed_checkpoint_ms = batch_ms
            self._cond.notify_all()

    def _on_failed(self, batch_ms: int, exc: BaseException) -> None:
        self._pop_queued()
        with self._cond:
            self._failed_n += 1
            self._last_failure = exc
        self._report(StreamingListenerCheckpointFailed(batch_ms, "metadata", self._dir, repr(exc)))
        if isinstance(exc, DriverLeaseError):
            self._runtime.report_error(f"driver fenced at batch {batch_ms} ms", exc)

    def _on_lease_lost(self, exc: DriverLeaseError) -> None:
        self._runtime.report_error("driver lease lost", exc)

    def _on_rdd_error(self, stream_id: int, time_ms: int, url: str, exc: BaseException) -> None:
        self._report(StreamingListenerCheckpointFailed(time_ms, "rdd", url, repr(exc)))

    def _on_rdd_committed(self, ref: DataCheckpointRef) -> None:
        self._report(StreamingListenerCheckpointWritten(ref.batch_ms, "rdd", ref.url))

    def _clean_receivers(self, threshold_ms: int) -> None:
        # The JobGenerator decides and does the cleanup; a durable checkpoint is what allows it.
        self._runtime.generator.clean_received_blocks(threshold_ms)

    def _report(self, event: Any) -> None:
        self._runtime.bus.post(event)

    # -- waiting (tests, graceful stop) ------------------------------------------------------------------

    def wait_for_checkpoint(self, time_ms: int, timeout_s: float) -> bool:
        """Wait until a completion checkpoint of batch `time_ms` (or later) is durable; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self.completed_checkpoint_ms is not None and self.completed_checkpoint_ms >= time_ms,
                timeout=timeout_s,
            )
