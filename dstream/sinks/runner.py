"""Drives a TransactionalSink through one batch.

`write_batch` is the per-batch entry point (the DStream output `stream.write_to(sink)` calls it, see
dstream.streaming.sink_output; tests and tools may call it directly to re-run a batch): skip if
committed, else begin, stage every partition in tasks, commit once on the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from dstream.errors import DStreamValueError
from dstream.sinks.base import StagedPart, TransactionalSink

BatchOutcome = Literal["committed", "already-committed", "skipped"]


def check_sink(sink: object) -> TransactionalSink:
    if not isinstance(sink, TransactionalSink):
        raise DStreamValueError(f"expected a dstream.sinks.TransactionalSink, got {sink!r}")
    return sink


def prepare(
    sink: TransactionalSink, checkpoint_dir: str | None, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Bind the sink's commit log (to the checkpoint dir, if any) and recover it, once per process."""
    if checkpoint_dir is not None:
        sink.bind_commit_dir(checkpoint_dir, storage_options)
    if not getattr(sink, "_recovered", False):
        sink.recover()
        sink._recovered = True  # type: ignore[attr-defined]


def write_batch(
    sink: TransactionalSink,
    batch_ms: int,
    rdd: Any,
    *,
    checkpoint_dir: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    fence: Callable[[], None] | None = None,
) -> BatchOutcome:
    """Write one batch's RDD through `sink` exactly once.

    Args:
        sink: the transactional sink.
        batch_ms: the batch time in milliseconds (the commit key with the sink's output id).
        rdd: the batch's RDD; each partition is staged by one task.
        checkpoint_dir: the streaming checkpoint directory, offered as the commit log's home.
        storage_options: fsspec options for `checkpoint_dir`.
        fence: called right before the commit; raising (a driver that lost its lease) leaves the
            batch uncommitted, its staged files to the next driver's recovery.

    Returns:
        "skipped" if the batch was committed before, else the outcome of the sink's commit.

    Raises:
        DStreamValueError: `sink` is not a TransactionalSink or `batch_ms` is not an int >= 0.
    """
    check_sink(sink)
    if not isinstance(batch_ms, int) or isinstance(batch_ms, bool) or batch_ms < 0:
        raise DStreamValueError(f"batch_ms must be an int >= 0 (milliseconds), got {batch_ms!r}")
    prepare(sink, checkpoint_dir, storage_options)
    if sink.is_committed(batch_ms):
        return "skipped"
    txn = sink.begin(batch_ms)

    def stage_partition(index: int, records: Iterator[Any]) -> list[StagedPart]:
        return [sink.stage(txn, index, records)]

    try:
        staged = rdd.mapPartitionsWithIndex(stage_partition).collect()
    except BaseException:
        sink.abort(txn)  # nothing was committed; the attempt's staging is garbage
        raise
    if fence is not None:
        fence()
    # No abort once commit starts: a commit that fails after its commit point is finished by recover().
    return sink.commit(txn, sorted(staged, key=lambda p: p.partition_index))
