"""The one task type the scheduler ships to a backend, and the context a task computes in.

A stage is pickled once (cloudpickle) into a ``stage_binary`` holding the RDD to compute and the
function applied to each of its partitions' iterator (an action's per-partition step), or a
`ShuffleMapWriter` for a shuffle's map side. A task is that binary plus one partition index plus the
*references* the driver resolved for it (dstream.backends.block_manager.BlockRef): blocks of
persisted or in-memory RDDs and the shuffle buckets it reads, each with the executors holding it.
The task resolves them through its executor's block manager; blocks it computes for persisted RDDs
and the buckets of a map task go into that block manager too. So a task's result carries the action's
value (or a map task's small `MapStatus`), the locations of the blocks it made and its accumulator
sums: never partitions or buckets.

A referenced block that is gone raises `BlockLostError`; the DAG scheduler then recomputes it from
lineage. A task that recovered a block another way (a block RDD reading the receiver WAL) says so
with `TaskContext.get().report_recovery(...)`, and the scheduler reports it to its listeners.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dstream.accumulators import collecting_updates
from dstream.backends.block_manager import BlockLostError, BlockManager, BlockRef, Lost, RDDBlockId
from dstream.backends.executor_env import current_executor_env
from dstream.errors import DStreamError
from dstream.rdd.block_recovery import BlockRecovery
from dstream.rdd.block_values import from_block, to_block
from dstream.storage_level import StorageLevel

if TYPE_CHECKING:
    from dstream.rdd.storage import BlockId

_current_task: ContextVar[TaskContext | None] = ContextVar("dstream_task_context", default=None)


@dataclass
class TaskInputs:
    """What a task reads that is not computed from lineage inside it: references, never bytes."""

    blocks: dict[BlockId, BlockRef] = field(default_factory=dict)
    shuffles: dict[tuple[int, int], tuple[BlockRef, ...]] = field(default_factory=dict)


class TaskContext:
    """Per-task state: input references, the executor's block manager, blocks made here."""

    def __init__(self, split: int, inputs: TaskInputs, block_manager: BlockManager) -> None:
        self.split = split
        self.blocks = inputs.blocks
        self.shuffles = inputs.shuffles
        self.block_manager = block_manager
        self.new_blocks: dict[BlockId, tuple[str, ...]] = {}
        self.recoveries: list[BlockRecovery] = []

    @classmethod
    def get(cls) -> TaskContext | None:
        """The context of the task running in this thread, or None outside a task (PySpark's name)."""
        return _current_task.get()

    def partitionId(self) -> int:
        """The partition this task computes (PySpark's TaskContext name)."""
        return self.split

    def read_block(self, ref: BlockRef) -> Any:
        """The referenced block's value, from this executor's block manager (fetched if remote).

        Raises:
            BlockLostError: no holder has the block any more.
        """
        value = self.block_manager.get(ref.block_id, ref.locations)
        if isinstance(value, Lost):
            raise BlockLostError(ref.block_id, f"referenced at {', '.join(ref.locations) or 'no location'}")
        return value

    def read_records(self, ref: BlockRef) -> list[Any]:
        """The records of a referenced RDD block (a fresh copy of records that could be mutated)."""
        return from_block(self.read_block(ref))

    def keep_block(self, rdd_id: int, split: int, records: list[Any], level: StorageLevel) -> None:
        """Put a computed partition of a persisted RDD into this executor's block manager."""
        value = to_block(records, level)
        self.new_blocks[(rdd_id, split)] = self.block_manager.put(RDDBlockId(rdd_id, split), value, level)

    def shuffle_input(self, shuffle_id: int, split: int) -> list[bytes]:
        """Bucket `split` of every map task of the shuffle, in map order (pickled bytes)."""
        try:
            refs = self.shuffles[(shuffle_id, split)]
        except KeyError:
            raise DStreamError(
                f"task was not given the buckets of shuffle {shuffle_id} partition {split}"
            ) from None
        return [self.read_block(ref) for ref in refs]

    def report_recovery(self, recovery: BlockRecovery) -> None:
        """Tell the scheduler that this task recovered a lost block (e.g. from the WAL)."""
        self.recoveries.append(recovery)


@dataclass
class TaskResult:
    """A task's value, where the blocks it made are, its accumulator sums and the recoveries it did."""

    value: Any
    new_blocks: dict[BlockId, tuple[str, ...]]
    accumulator_updates: dict[int, Any] = field(default_factory=dict)
    recoveries: list[BlockRecovery] = field(default_factory=list)


class MapSideWriter:
    """A stage function for a shuffle's map side (dstream.rdd.shuffle.ShuffleMapWriter implements it)."""

    def write(self, records: Iterator[Any], map_index: int, block_manager: BlockManager) -> Any:
        raise NotImplementedError


class StageTask:
    """Computes ``func(rdd.iterator(split))`` for one partition of a pickled stage."""

    def __init__(
        self,
        stage_binary: bytes,
        split: int,
        inputs: TaskInputs,
        description: str,
        preferred_locations: tuple[str, ...] = (),
    ) -> None:
        self.stage_binary = stage_binary
        self.split = split
        self.inputs = inputs
        self.description = description
        self.preferred_locations = preferred_locations

    def describe(self) -> str:
        return f"task {self.split} of {self.description}"

    def run(self) -> TaskResult:
        # Accumulators in the stage are unpickled inside the scope: their adds go back with the result.
        block_manager = current_executor_env().block_manager
        with collecting_updates() as updates:
            _lineage, rdd, func = pickle.loads(self.stage_binary)
            tctx = TaskContext(self.split, self.inputs, block_manager)
            token = _current_task.set(tctx)
            try:
                records = rdd.iterator(self.split, tctx)
                if isinstance(func, MapSideWriter):
                    value = func.write(records, self.split, block_manager)
                else:
                    step: Callable[[Iterator[Any]], Any] = func
                    value = step(records)
            finally:
                _current_task.reset(token)
        return TaskResult(value, tctx.new_blocks, updates, tctx.recoveries)
