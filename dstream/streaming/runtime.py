"""The streaming runtime: the objects one StreamingContext owns, and the protocols its core calls.

`StreamingContext` builds one `StreamingRuntime` and passes it down: DStreams reach the graph, the
configuration and the checkpoint location through it, the JobGenerator allocates blocks through its
`block_allocator`, and recovery hands the context a `RecoveredState` value (dstream.recovery.restore)
instead of filling private fields. Nothing here is process-global (docs/architecture.md holds the map
of who owns which decision).

The core of the engine (this package) never imports the receivers, the sinks or recovery: what it
needs from them is declared here as protocols (`BlockAllocator`, `RateLimitTarget`, `Checkpointer`,
`BatchQuarantiner`), implemented by the receiver tracker, the checkpoint coordinator and the
quarantine writer, and plugged in by the context at start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from checkpoint.layout import rdd_checkpoint_dir
from dstream.clock import Clock
from dstream.config import StreamingConfig
from dstream.context import Context
from dstream.errors import DStreamStateError
from dstream.rdd.rdd import RDD
from dstream.streaming.graph import DStreamGraph
from dstream.streaming.listener import StreamingListenerBus

if TYPE_CHECKING:
    from dstream.streaming.job_generator import JobGenerator
    from dstream.streaming.job_scheduler import JobScheduler

INITIALIZED, ACTIVE, STOPPED = "INITIALIZED", "ACTIVE", "STOPPED"


class BlockAllocator(Protocol):
    """What the JobGenerator needs from the receivers: Spark's ReceiverTracker, seen from the core."""

    def allocate_blocks_to_batch(self, time_ms: int) -> None:
        """Durably give every receiver stream's unallocated blocks to batch `time_ms` (idempotent)."""

    def records_of_batch(self, time_ms: int) -> Mapping[int, int]:
        """Records allocated to batch `time_ms`, per receiver stream id."""
        ...

    def has_unallocated_received_blocks(self) -> bool:
        """Whether a stored block waits for a batch (a graceful stop generates one more batch then)."""
        ...

    def cleanup_old_blocks_and_batches(self, threshold_ms: int) -> None:
        """Forget batches before `threshold_ms` and delete their blocks and WAL segments."""

    def start(self) -> None:
        """Start the receivers."""

    def stop_receivers(self) -> None:
        """Stop the receivers; allocation keeps working (a graceful stop still generates batches)."""

    def close(self) -> None:
        """Release the block metadata log (after the last batch was generated)."""


class RateLimitTarget(Protocol):
    """Where the backpressure controller sends each receiver stream's estimated rate (the ReceiverTracker)."""

    def update_rate_limit(self, stream_id: int, records_per_s: float) -> None:
        """From now on, stream `stream_id`'s receiver stores at most this many records per second."""


class RddCheckpoints(Protocol):
    """Writes RDD data checkpoints (asynchronously) and cuts lineage once they are durable."""

    def mark(self, stream_id: int, time_ms: int, rdd: RDD[Any]) -> RDD[Any]:
        """Schedule `rdd` of stream `stream_id` at `time_ms` for a data checkpoint; returns what to keep."""
        ...


class Checkpointer(Protocol):
    """What the core needs from the checkpoint coordinator (dstream.recovery.coordinator)."""

    @property
    def rdds(self) -> RddCheckpoints:
        """The RDD data checkpointer."""
        ...

    def checkpoint_hook(self, time_ms: int, completed: bool) -> None:
        """After batch `time_ms` was generated (completed=False) or completed (True)."""

    def wait_for_checkpoint(self, time_ms: int, timeout_s: float) -> bool:
        """Wait for a durable completion checkpoint of `time_ms` or later; False on timeout."""
        ...

    def stop(self) -> None:
        """Finish queued checkpoints and release the driver lease."""


@dataclass(frozen=True)
class QuarantineReceipt:
    """Where a quarantined batch's input went and how many records it held, per input stream id."""

    location: str
    num_records: Mapping[int, int]
    newly_written: bool


class BatchQuarantiner(Protocol):
    """Copies a failed batch's input to the dead-letter area (dstream.recovery.quarantine)."""

    def quarantine(
        self, time_ms: int, input_rdds: Mapping[int, RDD[Any]], error: str, attempts: int
    ) -> QuarantineReceipt:
        """Durably store the records of `input_rdds` with `error`; idempotent per batch time.

        Raises:
            Exception: the copy failed; the batch must then stay pending (nothing may be lost).
        """
        ...


@dataclass(frozen=True)
class CheckpointLocation:
    """The checkpoint directory (an fsspec URL) and the fsspec options to reach it."""

    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    def rdd_dir(self, stream_id: int, time_ms: int) -> str:
        """`<dir>/rdd/<stream-id>/<batch_ms>`, where a stream's data checkpoint of a batch lives."""
        return rdd_checkpoint_dir(self.url, stream_id, time_ms)


def _no_fence() -> None:
    """The fence of a context without a driver lease: nothing to check."""


class StreamingRuntime:
    """The graph, job generator, job scheduler, listener bus, receivers and checkpointer of a context.

    Built by `StreamingContext`, which is its only writer; everything else receives it and reads.

    Attributes:
        sc: the engine Context (PySpark's SparkContext).
        clock: drives batch times.
        batch_ms: the batch interval.
        config: the configuration, parsed once at start (defaults before).
        graph: the DStreams (the static template).
        bus: the listener bus.
        scheduler: runs each batch's jobs.
        generator: turns clock ticks into batches.
        checkpoint: where checkpoints go, or None.
        block_allocator: the receivers' block tracker once started (None without receiver streams).
        checkpointer: the checkpoint coordinator once started (None without a checkpoint directory).
        fence: called right before anything durable is published that a successor driver would not
            see or would adopt (a receiver block's record and its acknowledgement, a sink commit, a
            quarantined batch, an RDD data checkpoint); raises once this driver lost its checkpoint
            directory's lease. The checkpoint
            coordinator installs the lease's `ensure_held`; a no-op without a checkpoint directory.
        setup_fingerprint: the code fingerprint of getOrCreate's setup function (stored in checkpoints).
    """

    def __init__(self, sc: Context, clock: Clock, batch_ms: int, graph: DStreamGraph) -> None:
        self.sc = sc
        self.clock = clock
        self.batch_ms = batch_ms
        self.config = StreamingConfig()  # replaced by the parsed configuration at start
        self.graph = graph
        self.bus = StreamingListenerBus()
        self.checkpoint: CheckpointLocation | None = None
        self.block_allocator: BlockAllocator | None = None
        self.checkpointer: Checkpointer | None = None
        self.fence: Callable[[], None] = _no_fence
        self.setup_fingerprint: dict[str, Any] | None = None
        self.state = INITIALIZED
        self.state_lock = threading.RLock()
        # Set right after construction by the context (they need the runtime's callbacks).
        self.scheduler: JobScheduler
        self.generator: JobGenerator

    def check_can_add_operation(self) -> None:
        """Refuse new streams and operations once the context started or stopped (Spark's messages)."""
        if self.state == ACTIVE:
            raise DStreamStateError(
                "Adding new inputs, transformations, and output operations after starting a context is not "
                "supported"
            )
        if self.state == STOPPED:
            raise DStreamStateError(
                "Adding new inputs, transformations, and output operations after stopping a context is not "
                "supported"
            )

    def report_error(self, message: str, error: BaseException) -> None:
        """Fail the application: awaitTermination re-raises `error` (any thread may call this)."""
        self.scheduler.report_error(message, error)
