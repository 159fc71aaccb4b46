"""The one task type the scheduler ships to a backend, and the context a task computes in.

A stage is pickled once (cloudpickle) into a ``stage_binary`` holding the RDD to compute and the
function applied to each of its partitions' iterator (an action's per-partition step, or a shuffle
map side's bucket writer). A task is that binary plus one partition index plus the inputs the
driver resolved for it: blocks of persisted or in-memory RDDs and shuffle buckets. The task
returns its value and the blocks it computed for persisted RDDs, by value.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dstream.accumulators import collecting_updates
from dstream.errors import DStreamError
from dstream.pickling import dumps_text

if TYPE_CHECKING:
    from dstream.rdd.storage import BlockId


@dataclass
class TaskInputs:
    """What a task reads that is not computed from lineage inside it."""

    blocks: dict[BlockId, list[Any]] = field(default_factory=dict)
    shuffles: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, ...]:
        # A block of plain text (a partition of lines) is pickled without the memo, which is most of
        # the cost of shipping it (dstream.pickling), and travels as an out-of-band buffer when the
        # pickler takes them (protocol 5); other blocks go with the task's own pickle.
        packed = {block_id: _packed_or_as_is(records) for block_id, records in self.blocks.items()}
        return _unpack_inputs, (packed, self.shuffles)


def _packed_or_as_is(records: list[Any]) -> Any:
    packed = dumps_text(records)
    return records if packed is None else pickle.PickleBuffer(packed)


def _unpack_inputs(packed: dict[BlockId, Any], shuffles: dict[tuple[int, int], list[bytes]]) -> TaskInputs:
    # A block's records are a list; anything else is a packed block (bytes, or a buffer view).
    blocks = {b: r if isinstance(r, list) else pickle.loads(r) for b, r in packed.items()}
    return TaskInputs(blocks, shuffles)


class TaskContext:
    """Per-task state: resolved inputs, and blocks computed here for persisted RDDs."""

    def __init__(self, split: int, inputs: TaskInputs) -> None:
        self.split = split
        self.blocks = inputs.blocks
        self.shuffles = inputs.shuffles
        self.new_blocks: dict[BlockId, list[Any]] = {}

    def partitionId(self) -> int:
        """The partition this task computes (PySpark's TaskContext name)."""
        return self.split

    def shuffle_input(self, shuffle_id: int, split: int) -> list[bytes]:
        try:
            return self.shuffles[(shuffle_id, split)]
        except KeyError:
            raise DStreamError(
                f"task was not given the buckets of shuffle {shuffle_id} partition {split}"
            ) from None


@dataclass
class TaskResult:
    """A task's value, the persisted blocks it computed (stored on the driver) and its accumulator sums."""

    value: Any
    new_blocks: dict[BlockId, list[Any]]
    accumulator_updates: dict[int, Any] = field(default_factory=dict)


class StageTask:
    """Computes ``func(rdd.iterator(split))`` for one partition of a pickled stage."""

    def __init__(self, stage_binary: bytes, split: int, inputs: TaskInputs, description: str) -> None:
        self.stage_binary = stage_binary
        self.split = split
        self.inputs = inputs
        self.description = description

    def describe(self) -> str:
        return f"task {self.split} of {self.description}"

    def run(self) -> TaskResult:
        # Accumulators in the stage are unpickled inside the scope: their adds go back with the result.
        with collecting_updates() as updates:
            _lineage, rdd, func = pickle.loads(self.stage_binary)
            tctx = TaskContext(self.split, self.inputs)
            step: Callable[[Iterator[Any]], Any] = func
            value = step(rdd.iterator(self.split, tctx))
        return TaskResult(value, tctx.new_blocks, updates)
