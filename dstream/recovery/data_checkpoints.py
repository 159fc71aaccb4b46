"""Asynchronous RDD data checkpoints of stateful streams (docs/architecture.md section 5).

Spark writes a stateful stream's RDD synchronously, in a second pass after the batch's output job.
Here `mark` (called from `DStreamBase._checkpoint_rdd` at generation) only remembers the RDD, which
the stream has persisted; when the batch's jobs have completed (so the partitions are cached),
`on_batch_completed` submits the write to one background thread while later batches run. That
thread pickles the cached partitions from the block store and publishes every part (uploads
overlapped on a small pool of its own, `dstream.recovery.block_parts`; not a job, whose tasks would
take the next batch's task slots; a partition no longer cached falls back to the job), then
`_COMMITTED`; only then is the lineage cut and the reference recorded for the next metadata
checkpoint, so a metadata checkpoint never references an uncommitted directory. A failed write is
reported (the listener bus) and the stream is simply checkpointed again at its next interval:
lineage stays bounded because a newer write completes. A queued write whose stream already has a
newer RDD queued is skipped (superseded), so a slow store makes the writer skip intervals instead of
falling ever further behind; at most `writes_queued_max` writes wait.

Synchronous mode (conf `dstream.checkpoint.async=false`, for the benchmark) writes and cuts in `mark`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from checkpoint.metadata import DataCheckpointRef
from dstream.recovery.block_parts import cached_partitions, write_parts

log = logging.getLogger(__name__)

WRITES_QUEUED_MAX = 8
PART_UPLOADS_MAX = 4

DirFor = Callable[[int, int], str]
OnError = Callable[[int, int, str, BaseException], None]
OnCommitted = Callable[[DataCheckpointRef], None]


class RddCheckpointer:
    """Writes marked RDDs under `dir_for(stream_id, time_ms)` and tracks the newest committed ones.

    Args:
        dir_for: the directory URL of a stream's RDD at a time.
        storage_options: fsspec options for the checkpoint directory.
        asynchronous: write in the background after the batch completed (default) or at once.
        on_error: called with (stream_id, time_ms, url, error) when a write fails.
        on_committed: called with the new reference after a write committed and the lineage was cut.
        writes_queued_max: writes waiting or running at most; more are skipped (retried next interval).
        part_uploads_max: parts of one write uploaded at once (asynchronous mode, cached RDDs).
        fence: called before each write; raising (this driver lost its lease) fails the write as
            any error does. A re-run adopts existing valid parts as they are, so a fenced driver must
            not write parts its successor could adopt.
    """

    def __init__(
        self,
        dir_for: DirFor,
        storage_options: Mapping[str, Any],
        *,
        asynchronous: bool = True,
        on_error: OnError | None = None,
        on_committed: OnCommitted | None = None,
        writes_queued_max: int = WRITES_QUEUED_MAX,
        part_uploads_max: int = PART_UPLOADS_MAX,
        fence: Callable[[], None] | None = None,
    ) -> None:
        self._dir_for = dir_for
        self._fence = fence
        self._so = dict(storage_options)
        self.asynchronous = asynchronous
        self._on_error = on_error
        self._on_committed = on_committed
        self._writes_queued_max = writes_queued_max
        self._lock = threading.Condition()
        self._marked: dict[tuple[int, int], Any] = {}
        self._committed: dict[int, DataCheckpointRef] = {}
        self._in_flight: set[Future[None]] = set()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="dstream-rdd-checkpoint")
        self._io = ThreadPoolExecutor(part_uploads_max, thread_name_prefix="dstream-rdd-part")
        self._newest_submitted: dict[int, int] = {}
        self.writes_failed = 0
        self.writes_skipped = 0
        self.writes_superseded = 0

    def restore(self, refs: list[DataCheckpointRef]) -> None:
        """Start from the references of a recovered checkpoint (they stay referenced until replaced)."""
        with self._lock:
            for ref in refs:
                self._committed[int(ref.stream_id)] = ref

    def mark(self, stream_id: int, time_ms: int, rdd: Any) -> Any:
        """Checkpoint `rdd` of `stream_id` at `time_ms` (generator thread); returns the RDD to keep."""
        if not self.asynchronous:
            self._write(stream_id, time_ms, rdd)
            return rdd
        with self._lock:
            self._marked[(stream_id, time_ms)] = rdd
        return rdd

    def on_batch_completed(self, time_ms: int) -> None:
        """Submit the writes of every marked RDD of a batch at or before `time_ms`."""
        with self._lock:
            due = sorted(key for key in self._marked if key[1] <= time_ms)
            batch = [(key, self._marked.pop(key)) for key in due]
            for (stream_id, t), rdd in batch:
                if len(self._in_flight) >= self._writes_queued_max:
                    self.writes_skipped += 1
                    log.warning(
                        "RDD checkpoint of stream %d at %d ms skipped: %d writes queued",
                        stream_id,
                        t,
                        len(self._in_flight),
                    )
                    continue
                self._newest_submitted[stream_id] = max(t, self._newest_submitted.get(stream_id, t))
                future = self._executor.submit(self._write, stream_id, t, rdd)
                self._in_flight.add(future)
                future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.discard(future)
            self._lock.notify_all()

    def _write(self, stream_id: int, time_ms: int, rdd: Any) -> None:
        if self.asynchronous:
            with self._lock:
                superseded = self._newest_submitted.get(stream_id, time_ms) > time_ms
                if superseded:
                    self.writes_superseded += 1
            if superseded:  # a newer RDD of the stream is queued: writing this one would not cut more
                return
        url = self._dir_for(stream_id, time_ms)
        try:
            if self._fence is not None:
                self._fence()
            self._write_parts(url, rdd)
            rdd._cut_lineage(url, storage_options=self._so)
        except Exception as exc:
            self.writes_failed += 1
            log.warning("RDD checkpoint %s failed: %r (retried at the next interval)", url, exc)
            if self._on_error is not None:
                self._on_error(stream_id, time_ms, url, exc)
            return
        ref = DataCheckpointRef(str(stream_id), time_ms, url)
        with self._lock:
            current = self._committed.get(stream_id)
            if current is None or current.batch_ms < time_ms:
                self._committed[stream_id] = ref
        if self._on_committed is not None:
            self._on_committed(ref)

    def _write_parts(self, url: str, rdd: Any) -> None:
        # After its batch the RDD's partitions are cached: write them here, not in a job whose
        # tasks would take the next batch's task slots (dstream.recovery.block_parts).
        partitions = cached_partitions(rdd) if self.asynchronous else None
        if partitions is None:
            rdd._write_checkpoint(url, storage_options=self._so)
        else:
            write_parts(url, partitions, self._so, self._io)

    def committed_refs(self) -> tuple[DataCheckpointRef, ...]:
        """The newest committed data checkpoint of each stream, by stream id."""
        with self._lock:
            return tuple(self._committed[k] for k in sorted(self._committed))

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no write is queued or running; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._in_flight, timeout=timeout_s)

    def stop(self, timeout_s: float) -> None:
        """Let running writes finish (bounded), drop the marked ones, stop the thread."""
        self.wait_idle(timeout_s)
        with self._lock:
            self._marked.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._io.shutdown(wait=False, cancel_futures=True)
