"""Rebuild a StreamingContext from the newest valid metadata checkpoint (getOrCreate's recovery half).

Steps: read the newest valid checkpoint (falling back past corrupt ones); refuse it if the setup
function's code differs from the one that wrote it; reuse the active Context or make one from the
checkpointed master and config; unpickle the graph and attach it to a new StreamingContext on the
same checkpoint directory; point each stateful stream at its committed RDD data checkpoint; and
remember the restart inputs (checkpoint time, pending batches) for `JobGenerator.restart` at start().
The setup function is not called.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cloudpickle

from checkpoint.errors import CheckpointError
from checkpoint.metadata import MetadataCheckpoint, read_latest
from dstream.errors import DStreamError, DStreamValueError
from dstream.recovery.fingerprints import check_setup_fingerprint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveryInfo:
    """What the JobGenerator needs to restart: the newest generated batch and the pending ones."""

    checkpoint_ms: int
    pending_ms: tuple[int, ...]
    checkpoint_name: str


def _read(path: str, storage_options: dict[str, Any]) -> MetadataCheckpoint | None:
    ckpt, skipped = read_latest(path, storage_options=storage_options)
    for s in skipped:
        log.warning("skipping checkpoint %s: %s", s.url, s.reason)
    if ckpt is None and skipped:
        reasons = "; ".join(f"{s.name.filename()}: {s.reason}" for s in skipped[:5])
        raise DStreamError(
            f"Failed to read checkpoint from directory {path}: {len(skipped)} checkpoint files, none valid "
            f"({reasons})"
        )
    return ckpt


def _restore_data_checkpoints(graph: Any, ckpt: MetadataCheckpoint, sc: Any, options: dict[str, Any]) -> None:
    for ref in ckpt.data_checkpoints:
        stream = graph.streams[int(ref.stream_id)]
        try:
            stream._generated[ref.batch_ms] = sc._checkpoint_rdd(ref.url, options)
        except CheckpointError as exc:
            raise DStreamError(
                f"checkpoint {ckpt.name} references RDD data checkpoint {ref.url} of stream {ref.stream_id} "
                f"at {ref.batch_ms} ms, which cannot be read: {exc}"
            ) from exc


def _reattach_receivers(ssc: Any) -> None:
    # The receiver package keeps each context's receivers in a registry keyed by the context; the
    # restored streams carry their receivers, so register them for the new context.
    receivers = [s for s in ssc.graph.input_streams if hasattr(s, "_receiver")]
    if not receivers:
        return
    from dstream.receiver.input_stream import _group

    group = _group(ssc)
    for stream in receivers:
        group.receivers[stream._id] = stream._receiver


def recover_context(
    cls: Any,
    path: str,
    setup: Callable[[], Any] | None,
    *,
    clock: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    """A StreamingContext restored from `path`, or None when `path` holds no checkpoint.

    Raises:
        CheckpointMismatchError: the checkpoint was written by a different setup function.
        DStreamError: checkpoint files exist but none is valid, or a referenced data checkpoint is gone.
    """
    from dstream.context import Conf, Context

    options = dict(storage_options or {})
    ckpt = _read(path, options)
    if ckpt is None:
        return None
    assert ckpt.name is not None
    where = f"{path}/metadata/{ckpt.name.filename()}"
    if setup is not None:
        check_setup_fingerprint(ckpt.extra.get("setup_fingerprint"), setup, where)
    sc = Context.getOrCreate(Conf(values={str(k): str(v) for k, v in ckpt.config.items()}))
    graph = cloudpickle.loads(ckpt.graph_blob)
    from dstream.recovery.coordinator import QUEUE_STREAM_ERROR
    from dstream.streaming.inputs import QueueInputDStream

    if any(isinstance(s, QueueInputDStream) for s in graph.input_streams):
        raise DStreamValueError(f"cannot recover from {where}: {QUEUE_STREAM_ERROR}")
    ssc = cls(sc, graph.batch_ms / 1000, clock=clock, _graph=graph)
    ssc.checkpoint(path, **options)
    graph.set_context(ssc)
    _reattach_receivers(ssc)
    _restore_data_checkpoints(graph, ckpt, sc, options)
    ssc._setup_fingerprint = ckpt.extra.get("setup_fingerprint")
    ssc._restored_refs = list(ckpt.data_checkpoints)
    last = int(ckpt.extra.get("last_generated_ms") or ckpt.batch_ms)
    ssc._recovery = RecoveryInfo(max(last, ckpt.batch_ms), tuple(ckpt.pending_batches), ckpt.name.filename())
    return ssc
