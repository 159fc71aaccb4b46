"""RDD data checkpoints: write an RDD's partitions with checkpoint.rdd_data, then cut its lineage.

Two steps, kept separate so that the streaming layer can run the first in a background thread
while later batches go on (docs/architecture.md section 5): `write_checkpoint` computes every partition in a
job whose tasks write their own part file, then commits on the driver; `cut_lineage` swaps the
RDD's node for a CheckpointNode that reads the parts back, under the scheduler's lineage lock so a
concurrent job sees either the old lineage or the new one, never a mix. Parents and shuffles the
old lineage held become unreferenced and are freed.

Core ``rdd.checkpoint()`` (Spark's semantics) marks an RDD; after each job, `checkpoint_marked`
walks the job's lineage and checkpoints the marked RDDs it finds, under
``<checkpointDir>/rdd/<context run uuid>/rdd-<id>``. The same walk materializes RDDs marked by
``rdd.localCheckpoint()`` (dstream.rdd.local_checkpoint).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from checkpoint import rdd_data
from dstream.errors import DStreamError
from dstream.pickling import dumps_records
from dstream.rdd import local_checkpoint
from dstream.rdd.nodes import Node

if TYPE_CHECKING:
    from dstream.rdd.rdd import RDD
    from dstream.rdd.tasks import TaskContext


class CheckpointNode(Node):
    """Partitions read back from a committed RDD checkpoint directory."""

    label = "ReliableCheckpointRDD"

    def __init__(self, dir_url: str, num_partitions: int, storage_options: Mapping[str, Any]) -> None:
        self.deps = []
        self.num_partitions = num_partitions
        self.dir_url = dir_url
        self.storage_options = dict(storage_options)

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        payload = rdd_data.read_part(self.dir_url, split, storage_options=self.storage_options)
        return iter(pickle.loads(payload))


def write_checkpoint(rdd: RDD[Any], dir_url: str, storage_options: Mapping[str, Any]) -> None:
    """Compute and durably write every partition of ``rdd``, then commit the directory."""
    options = dict(storage_options)
    writer = rdd.mapPartitionsWithIndex(partial(_write_part, dir_url=dir_url, options=options))
    rdd.context._scheduler.run_job(writer, _drain, None, f"checkpoint of RDD {rdd.id()}")
    rdd_data.commit(dir_url, rdd.getNumPartitions(), storage_options=options)


def _write_part(split: int, it: Iterator[Any], dir_url: str, options: dict[str, Any]) -> Iterator[Any]:
    """Task side: one partition, pickled once, published through checkpoint.rdd_data."""
    rdd_data.write_part(dir_url, split, dumps_records(list(it)), storage_options=options)
    return iter(())


def _drain(it: Iterator[Any]) -> None:
    for _ in it:
        pass


def cut_lineage(rdd: RDD[Any], dir_url: str, storage_options: Mapping[str, Any]) -> None:
    """Make ``rdd`` read its partitions from the committed checkpoint at ``dir_url``.

    Raises:
        DStreamError: the directory holds a different number of partitions than the RDD.
        checkpoint.errors.CheckpointNotCommittedError: the directory was never committed.
    """
    n = rdd_data.committed_partitions(dir_url, storage_options=storage_options)
    if n != rdd.getNumPartitions():
        raise DStreamError(
            f"checkpoint {dir_url} holds {n} partitions but RDD {rdd.id()} has {rdd.getNumPartitions()}"
        )
    node = CheckpointNode(dir_url, n, storage_options)
    with rdd.context._scheduler.lineage_lock:
        rdd._node = node
        rdd._checkpoint_dir = dir_url
        rdd.is_checkpointed = True
        rdd._checkpoint_marked = False


def checkpoint_marked(rdd: RDD[Any]) -> None:
    """After a job on ``rdd``: checkpoint it if marked, else its nearest marked ancestors."""
    seen: set[int] = set()
    stack = [rdd]
    while stack:
        r = stack.pop()
        if r._id in seen:
            continue
        seen.add(r._id)
        if r._checkpoint_marked and not r.is_checkpointed:
            _checkpoint_now(r)
            continue
        if r._local_checkpoint_marked and not r.is_checkpointed:
            local_checkpoint.materialize(r)
            continue
        stack.extend(dep.rdd for dep in r._node.deps if dep.rdd is not None)


def _checkpoint_now(rdd: RDD[Any]) -> None:
    ctx = rdd.context
    with rdd._ckpt_lock:
        if rdd.is_checkpointed:
            return
        dir_url = ctx._rdd_checkpoint_url(rdd.id())
        options = ctx._checkpoint_storage_options
        write_checkpoint(rdd, dir_url, options)
        cut_lineage(rdd, dir_url, options)
