"""Rebuild a StreamingContext from the newest valid metadata checkpoint (getOrCreate's recovery half).

Steps: read the newest valid checkpoint (falling back past corrupt ones); refuse it if the setup
function's code differs from the one that wrote it; reuse the active Context or make one from the
checkpointed master and config; unpickle the graph; point each stateful stream at its committed RDD
data checkpoint; and return it all, with the restart inputs (checkpoint time, pending batches) for
`JobGenerator.restart`, as one `RecoveredState` value that `StreamingContext.getOrCreate` turns into a
context. The setup function is not called.

Reading the checkpoint (the listing and the newest files) is retried on transient storage errors
(`wal.transient_errors`: a few attempts with back-off), so a restart does not fail on one flaky read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cloudpickle

from checkpoint.errors import CheckpointError
from checkpoint.metadata import DataCheckpointRef, MetadataCheckpoint, read_latest
from dstream.context import Conf, Context
from dstream.errors import DStreamError, DStreamValueError
from dstream.recovery.coordinator import QUEUE_STREAM_ERROR
from dstream.recovery.fingerprints import check_setup_fingerprint
from dstream.streaming.graph import DStreamGraph
from dstream.streaming.inputs import QueueInputDStream
from wal.transient_errors import retry_transient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveredState:
    """What a restarted driver resumes from; `StreamingContext.getOrCreate` consumes it.

    Attributes:
        sc: the engine Context (the active one, or one made from the checkpointed master and config).
        graph: the unpickled DStream graph, its stateful streams pointing at their data checkpoints.
        checkpoint_ms: the newest batch the checkpoint knows was generated.
        pending_ms: batches generated and not completed (re-run first).
        checkpoint_name: the metadata checkpoint file it came from.
        data_checkpoints: the RDD data checkpoints it references (kept until newer ones commit).
        setup_fingerprint: the setup function's code fingerprint, carried into later checkpoints.
    """

    sc: Any
    graph: DStreamGraph
    checkpoint_ms: int
    pending_ms: tuple[int, ...]
    checkpoint_name: str
    data_checkpoints: tuple[DataCheckpointRef, ...]
    setup_fingerprint: dict[str, Any] | None


def _read(path: str, storage_options: dict[str, Any]) -> MetadataCheckpoint | None:
    ckpt, skipped = retry_transient(
        lambda: read_latest(path, storage_options=storage_options), f"the newest checkpoint in {path}"
    )
    for s in skipped:
        log.warning("skipping checkpoint %s: %s", s.url, s.reason)
    if ckpt is None and skipped:
        reasons = "; ".join(f"{s.name.filename()}: {s.reason}" for s in skipped[:5])
        raise DStreamError(
            f"Failed to read checkpoint from directory {path}: {len(skipped)} checkpoint files, none valid "
            f"({reasons})"
        )
    return ckpt


def _restore_data_checkpoints(
    graph: DStreamGraph, ckpt: MetadataCheckpoint, sc: Any, options: dict[str, Any]
) -> None:
    for ref in ckpt.data_checkpoints:
        stream = graph.streams[int(ref.stream_id)]
        try:
            stream._restore_checkpointed(ref.batch_ms, sc._checkpoint_rdd(ref.url, options))
        except CheckpointError as exc:
            raise DStreamError(
                f"checkpoint {ckpt.name} references RDD data checkpoint {ref.url} of stream {ref.stream_id} "
                f"at {ref.batch_ms} ms, which cannot be read: {exc}"
            ) from exc


def recover(
    path: str,
    setup: Callable[[], Any] | None,
    *,
    storage_options: dict[str, Any] | None = None,
) -> RecoveredState | None:
    """The state saved in the newest valid checkpoint under `path`, or None when there is none.

    Raises:
        CheckpointMismatchError: the checkpoint was written by a different setup function.
        DStreamError: checkpoint files exist but none is valid, or a referenced data checkpoint is gone.
    """
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
    if not isinstance(graph, DStreamGraph):
        raise DStreamError(
            f"cannot recover from {where}: it holds {type(graph).__name__}, not a DStreamGraph"
        )
    if any(isinstance(s, QueueInputDStream) for s in graph.input_streams):
        raise DStreamValueError(f"cannot recover from {where}: {QUEUE_STREAM_ERROR}")
    _restore_data_checkpoints(graph, ckpt, sc, options)
    last = int(ckpt.extra.get("last_generated_ms") or ckpt.batch_ms)
    return RecoveredState(
        sc=sc,
        graph=graph,
        checkpoint_ms=max(last, ckpt.batch_ms),
        pending_ms=tuple(ckpt.pending_batches),
        checkpoint_name=ckpt.name.filename(),
        data_checkpoints=tuple(ckpt.data_checkpoints),
        setup_fingerprint=ckpt.extra.get("setup_fingerprint"),
    )
