"""DStreamBase: the time logic every DStream shares (Spark's DStream minus the operations).

A stream is initialized with the graph's zero time; a time is valid for it when it is after zero
and a multiple of its slide from zero. `_get_or_compute(t)` computes each valid time's RDD once,
persists it if asked, data-checkpoints it every checkpoint interval through `_checkpoint_rdd` (the
one seam the checkpoint issue makes asynchronous), and remembers it until `_clear_metadata` forgets
RDDs older than the remember duration. RDDs are opaque here: only their public API is used.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any, Protocol

from dstream.context import Context
from dstream.errors import DStreamStateError, DStreamValueError
from dstream.rdd.rdd import RDD
from dstream.rdd.storage import StorageLevel
from dstream.streaming.duration import seconds_to_ms, timestamp_to_ms
from dstream.streaming.runtime import INITIALIZED, CheckpointLocation, StreamingRuntime

log = logging.getLogger(__name__)

# Stateful streams checkpoint at least this often by default (Spark: the smallest multiple of the
# slide that is >= 10 s).
DEFAULT_CHECKPOINT_INTERVAL_MS = 10_000

CHECKPOINT_DIR_MISSING = (
    "The checkpoint directory has not been set. Please set it by StreamingContext.checkpoint()"
    " (or the Context's setCheckpointDir())."
)


class HasRuntime(Protocol):
    """What a stream needs of its StreamingContext: the runtime, and the engine context."""

    @property
    def runtime(self) -> StreamingRuntime: ...

    @property
    def sparkContext(self) -> Context: ...


def data_checkpoint_location(ssc: HasRuntime) -> CheckpointLocation | None:
    """Where RDD data checkpoints go, or None when no checkpoint directory is set.

    PySpark's rule: a stateful stream needs the SparkContext's checkpoint directory, which
    ``ssc.checkpoint(dir)`` sets too; so ``sc.setCheckpointDir(dir)`` alone is enough. Only
    ``ssc.checkpoint`` also turns on metadata checkpoints (recovery).
    """
    if ssc.runtime.checkpoint is not None:
        return ssc.runtime.checkpoint
    sc = ssc.sparkContext
    directory = sc.getCheckpointDir() if hasattr(sc, "getCheckpointDir") else None
    if directory is None:
        return None
    return CheckpointLocation(directory, dict(getattr(sc, "_checkpoint_storage_options", {})))


class DStreamBase:
    """Identity, lifecycle and time bookkeeping of a DStream."""

    _must_checkpoint = False

    def __init__(self, ssc: HasRuntime, parents: list[DStreamBase]) -> None:
        ssc.runtime.check_can_add_operation()
        self._ssc = ssc
        self._parents = list(parents)
        self._zero_time_ms: int | None = None
        self._remember_ms: int | None = None
        self._checkpoint_ms: int | None = None
        self._storage_level: StorageLevel | None = None
        self._persisted = False
        self._generated: dict[int, RDD[Any]] = {}
        self._lock = threading.RLock()
        self._id: int = ssc.runtime.graph.register(self)

    # -- pickling: the graph is cloudpickled into metadata checkpoints -------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for transient in ("_ssc", "_generated", "_lock"):
            state.pop(transient, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._ssc = None  # type: ignore[assignment]  # reattached by DStreamGraph.set_context
        self._generated = {}
        self._lock = threading.RLock()

    # -- identity -------------------------------------------------------------------------------------

    @property
    def _slide_ms(self) -> int:
        return self._parents[0]._slide_ms

    @property
    def _sc(self) -> Context:
        return self._ssc.sparkContext

    @property
    def _runtime(self) -> StreamingRuntime:
        return self._ssc.runtime

    def context(self) -> HasRuntime:
        """The StreamingContext this stream belongs to."""
        return self._ssc

    @property
    def is_cached(self) -> bool:
        """Whether this stream's RDDs are persisted (persist, cache or checkpoint was called)."""
        return self._persisted

    @property
    def is_checkpointed(self) -> bool:
        """Whether this stream's RDDs are data-checkpointed (checkpoint() was called, or it is stateful)."""
        return self._checkpoint_ms is not None or self._must_checkpoint

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id}, slide={self._slide_ms} ms)"

    # -- configuration (before start) -----------------------------------------------------------------

    def persist(self, storageLevel: StorageLevel | None = None) -> DStreamBase:
        """Persist every RDD this stream generates (at `storageLevel`, if the RDD layer takes one)."""
        self._check_not_started("change the storage level of")
        self._persisted = True
        self._storage_level = storageLevel
        return self

    def cache(self) -> DStreamBase:
        """Persist with the default (memory) storage level."""
        return self.persist()

    def checkpoint(self, interval: float) -> DStreamBase:
        """Data-checkpoint this stream's RDDs every `interval` seconds (a multiple of its slide)."""
        self._check_not_started("enable checkpointing of")
        interval_ms = seconds_to_ms(interval, "checkpoint interval")
        self._check_checkpoint_interval(interval_ms, interval)
        self._checkpoint_ms = interval_ms
        self._persisted = True
        return self

    def _check_checkpoint_interval(self, interval_ms: int, shown: Any) -> None:
        slide = self._slide_ms
        if interval_ms < slide or interval_ms % slide != 0:
            raise DStreamValueError(
                f"checkpoint interval {shown!r} ({interval_ms} ms) of {self!r} must be a multiple of its "
                f"slide duration ({slide} ms)"
            )

    def _check_not_started(self, what: str) -> None:
        if self._ssc is not None and self._runtime.state != INITIALIZED:
            raise DStreamStateError(f"Cannot {what} a DStream after the streaming context has started")

    # -- lifecycle (driven by the graph at start) -----------------------------------------------------

    def _initialize(self, zero_time_ms: int) -> None:
        if self._zero_time_ms is not None and self._zero_time_ms != zero_time_ms:
            raise DStreamStateError(
                f"{self!r}: zero time is already {self._zero_time_ms} ms, cannot initialize it to "
                f"{zero_time_ms} ms"
            )
        self._zero_time_ms = zero_time_ms
        slide = self._slide_ms
        if self._must_checkpoint and self._checkpoint_ms is None:
            self._checkpoint_ms = slide * math.ceil(DEFAULT_CHECKPOINT_INTERVAL_MS / slide)
        min_remember = slide
        if self._checkpoint_ms is not None and min_remember <= self._checkpoint_ms:
            # Twice the interval so the latest checkpointed RDD is never forgotten (Spark's "#paranoia").
            min_remember = self._checkpoint_ms * 2
        if self._remember_ms is None or self._remember_ms < min_remember:
            self._remember_ms = min_remember
        for parent in self._parents:
            parent._initialize(zero_time_ms)

    def _parent_remember_ms(self) -> int | None:
        return self._remember_ms

    def _remember(self, duration_ms: int | None) -> None:
        if duration_ms is not None and (self._remember_ms is None or duration_ms > self._remember_ms):
            self._remember_ms = duration_ms
        for parent in self._parents:
            parent._remember(self._parent_remember_ms())

    def _validate_at_start(self) -> None:
        if self._checkpoint_ms is not None:
            if data_checkpoint_location(self._ssc) is None:
                raise DStreamValueError(CHECKPOINT_DIR_MISSING)
            self._check_checkpoint_interval(self._checkpoint_ms, self._checkpoint_ms / 1000)
        for parent in self._parents:
            parent._validate_at_start()

    # -- computing RDDs -------------------------------------------------------------------------------

    def _compute(self, time_ms: int) -> RDD[Any] | None:
        """This stream's RDD at a valid time, or None when it has none."""
        raise NotImplementedError

    def _is_time_valid(self, time_ms: int) -> bool:
        if self._zero_time_ms is None:
            raise DStreamStateError(f"{self!r} has not been initialized")
        offset = time_ms - self._zero_time_ms
        return offset > 0 and offset % self._slide_ms == 0

    def _generated_rdd(self, time_ms: int) -> RDD[Any] | None:
        """The RDD this stream computed for `time_ms`, if it did and still remembers it (never computes)."""
        with self._lock:
            return self._generated.get(time_ms)

    def _get_or_compute(self, time_ms: int) -> RDD[Any] | None:
        with self._lock:
            if time_ms in self._generated:
                return self._generated[time_ms]
            if not self._is_time_valid(time_ms):
                return None
            rdd = self._compute(time_ms)
            if rdd is None:
                return None
            if self._persisted:
                rdd = self._persist_rdd(rdd)
            if self._checkpoint_ms is not None and (time_ms - self._zero_time_ms) % self._checkpoint_ms == 0:  # type: ignore[operator]
                rdd = self._checkpoint_rdd(time_ms, rdd)
            self._generated[time_ms] = rdd
            return rdd

    def _persist_rdd(self, rdd: RDD[Any]) -> RDD[Any]:
        if self._storage_level is None:
            return rdd.persist()
        return rdd.persist(self._storage_level)

    def _checkpoint_rdd(self, time_ms: int, rdd: RDD[Any]) -> RDD[Any]:
        """Write `rdd` under `<ckpt>/rdd/<stream-id>/<time_ms>` and cut its lineage; returns the RDD to keep.

        ``<ckpt>`` is the streaming context's checkpoint directory, else the Context's
        (`data_checkpoint_root`).

        The one seam for RDD data checkpoints. A started context's checkpoint coordinator writes in
        the background after the batch completed (dstream.recovery.data_checkpoints); without one
        (a context driven by hand) the write is synchronous. Either way the lineage is cut only
        after the write committed, so a failed write leaves a recomputable RDD.
        """
        runtime = self._runtime
        if runtime.checkpointer is not None:
            return runtime.checkpointer.rdds.mark(self._id, time_ms, rdd)
        location = data_checkpoint_location(self._ssc)
        if location is None:
            raise DStreamValueError(CHECKPOINT_DIR_MISSING)
        directory = location.rdd_dir(self._id, time_ms)
        options = dict(location.storage_options)
        rdd._write_checkpoint(directory, storage_options=options)
        rdd._cut_lineage(directory, storage_options=options)
        return rdd

    def _restore_checkpointed(self, time_ms: int, rdd: RDD[Any]) -> None:
        """Recovery: this stream's RDD at `time_ms` is `rdd`, read back from its data checkpoint."""
        with self._lock:
            self._generated[time_ms] = rdd

    def slice(self, begin: Any, end: Any) -> list[RDD[Any]]:
        """The RDDs of this stream from `begin` to `end` inclusive (datetimes or epoch seconds)."""
        return self._slice_ms(timestamp_to_ms(begin, "begin"), timestamp_to_ms(end, "end"))

    def _slice_ms(self, from_ms: int, to_ms: int) -> list[RDD[Any]]:
        if self._zero_time_ms is None:
            raise DStreamStateError(f"{self!r} has not been initialized")
        zero, slide = self._zero_time_ms, self._slide_ms
        # Misaligned ends are floored onto the stream's time grid, as Spark does.
        to_ms = zero + (to_ms - zero) // slide * slide
        from_ms = zero + (from_ms - zero) // slide * slide
        rdds = []
        for t in range(from_ms, to_ms + 1, slide):
            rdd = self._get_or_compute(t) if t >= zero else None
            if rdd is not None:
                rdds.append(rdd)
        return rdds

    def _clear_metadata(self, time_ms: int) -> None:
        with self._lock:
            threshold = time_ms - (self._remember_ms or 0)
            old = [t for t in self._generated if t <= threshold]
            for t in old:
                rdd = self._generated.pop(t)
                if self._persisted:
                    try:
                        rdd.unpersist()
                    except Exception:
                        log.warning("unpersist of %r at %d ms failed", self, t, exc_info=True)
        for parent in self._parents:
            parent._clear_metadata(time_ms)
