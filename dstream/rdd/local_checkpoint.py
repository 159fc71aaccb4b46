"""Local checkpoints (PySpark's ``RDD.localCheckpoint``): truncate lineage to the cached blocks.

A long lineage costs on every job (the scheduler walks it, cloudpickle ships it), and an RDD that
depends on its own previous versions (a state stream) grows one step per batch. A reliable
checkpoint (``checkpointing``) cuts the lineage by writing the partitions to durable storage; a
local checkpoint cuts it by trusting the block manager instead, as Spark's
``LocalRDDCheckpointData`` does: the RDD is persisted, and after the first job that computes it
every partition is a block in the block manager (the driver's location table says where each one
is), so its node is swapped for a ``LocalCheckpointNode`` that has no parents. Nothing is written,
so nothing survives a lost block: computing a partition whose block is gone (unpersisted, its
executor lost, Context stopped) raises a clear error instead of silently recomputing. Use it where
speed matters more than fault tolerance.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dstream.errors import DStreamError
from dstream.rdd.nodes import Node

if TYPE_CHECKING:
    from dstream.rdd.rdd import RDD
    from dstream.rdd.tasks import TaskContext


class LocalCheckpointNode(Node):
    """Partitions that exist only as blocks of ``rdd_id`` in the block store; no lineage behind them."""

    label = "LocalCheckpointRDD"

    def __init__(self, rdd_id: int, num_partitions: int) -> None:
        self.deps = []
        self.num_partitions = num_partitions
        self.rdd_id = rdd_id

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        # Reached only when the block store no longer holds the partition (see module docstring).
        raise DStreamError(
            f"partition {split} of locally checkpointed RDD {self.rdd_id} is lost: its cached block is "
            "gone (unpersisted or the Context stopped) and a local checkpoint keeps no lineage to "
            "recompute it; use checkpoint() for fault-tolerant truncation"
        )


def materialize(rdd: RDD[Any]) -> None:
    """Compute the partitions the block store lacks, then cut ``rdd``'s lineage to its blocks.

    Called after a job on a marked RDD (Spark computes the missing partitions the same way when
    an action such as take() touched only some of them).
    """
    with rdd._ckpt_lock:
        if rdd.is_checkpointed:
            return
        scheduler = rdd.context._scheduler
        n = rdd.getNumPartitions()
        missing = [s for s in range(n) if scheduler.blocks.get(rdd._id, s) is None]
        if missing:
            scheduler.run_job(rdd, _drain, missing, f"local checkpoint of RDD {rdd._id}")
        with scheduler.lineage_lock:
            rdd._node = LocalCheckpointNode(rdd._id, n)
            rdd.is_checkpointed = True
            rdd._local_checkpoint_marked = False


def _drain(it: Iterator[Any]) -> None:
    for _ in it:
        pass
