"""The RDD: an immutable, partitioned collection with lineage, and PySpark's API.

This module holds the RDD's identity, its lineage node, persistence, checkpoint glue and the
debug string; the operations live in mixins by kind (transforms, pairs, actions) to keep each
module readable. ``iterator`` is the only method that runs inside tasks: it serves a partition
from a block the task was given a reference to, else computes it from the node, keeping the result
in the executor's block manager when the RDD is persisted.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dstream.errors import DStreamError, DStreamStateError, DStreamValueError
from dstream.rdd import checkpointing
from dstream.rdd.actions import ActionsMixin
from dstream.rdd.local_checkpoint import LocalCheckpointNode
from dstream.rdd.nodes import NarrowDependency, Node
from dstream.rdd.pairs import PairsMixin
from dstream.rdd.partitioner import Partitioner
from dstream.rdd.storage import NOT_STORED, StorageLevel
from dstream.rdd.transforms import TransformsMixin

if TYPE_CHECKING:
    from dstream.context import Context
    from dstream.rdd.tasks import TaskContext

_DRIVER_ONLY = ("ctx", "_ckpt_lock", "_block_finalizer")

T_co = TypeVar("T_co", covariant=True)


class RDD(TransformsMixin, PairsMixin, ActionsMixin, Generic[T_co]):
    """A Resilient Distributed Dataset (PySpark's ``pyspark.RDD``), generic in its element type.

    ``RDD[int]`` annotations work as in PySpark; the parameter is for type checkers only.
    """

    def __init__(self, ctx: Context, node: Node, partitioner: Partitioner | None = None) -> None:
        self.ctx = ctx
        self._id = ctx._new_rdd_id()
        self._node = node
        self.partitioner = partitioner
        self._name: str | None = None
        self._storage_level = NOT_STORED
        self._block_backed = False
        self.is_cached = False
        self.is_checkpointed = False
        self._checkpoint_marked = False
        self._local_checkpoint_marked = False
        self._checkpoint_dir: str | None = None
        self._ckpt_lock = threading.Lock()
        self._block_finalizer: Any = None

    # -- identity -------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in _DRIVER_ONLY:
            state[key] = None
        return state

    @property
    def context(self) -> Context:
        """The Context this RDD was created on."""
        if self.ctx is None:
            raise DStreamStateError(
                "an RDD shipped to a task has no Context: RDDs cannot be used inside tasks"
            )
        return self.ctx

    def id(self) -> int:
        """A unique id for this RDD within its Context."""
        return self._id

    def name(self) -> str | None:
        return self._name

    def setName(self, name: str) -> RDD[Any]:
        """Name this RDD (shown by toDebugString); returns self."""
        self._name = name
        return self

    def getNumPartitions(self) -> int:
        return self._node.num_partitions

    def __repr__(self) -> str:
        return self._name or f"{self._node.label}[{self._id}]"

    # -- computing (runs inside tasks) -----------------------------------------------------------
    def iterator(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        """Records of partition ``split``: from a referenced block, else computed from the node.

        A persisted RDD's computed partition goes into the task's executor's block manager.
        """
        if tctx.blocks:
            ref = tctx.blocks.get((self._id, split))
            if ref is not None:
                return iter(tctx.read_records(ref))
        it = self._node.compute(split, tctx)
        if self._storage_level.is_stored:
            records = list(it)
            tctx.keep_block(self._id, split, records, self._storage_level)
            return iter(records)
        return it

    def _derive(self, node: Node, partitioner: Partitioner | None = None) -> RDD[Any]:
        return RDD(self.context, node, partitioner)

    # -- persistence ---------------------------------------------------------------------------
    def persist(self, storageLevel: StorageLevel = StorageLevel.MEMORY_ONLY) -> RDD[Any]:
        """Keep computed partitions (in the block manager of the executor computing them); returns self."""
        if not isinstance(storageLevel, StorageLevel):
            raise DStreamValueError(f"storageLevel must be a StorageLevel, got {storageLevel!r}")
        if self._storage_level.is_stored and self._storage_level != storageLevel:
            raise DStreamValueError(
                f"cannot change the storage level of {self!r} from {self._storage_level!r}"
                f" to {storageLevel!r}"
            )
        self.ctx._block_locations.register(self._id)
        if self._block_finalizer is None:
            self._block_finalizer = weakref.finalize(self, self.ctx._block_locations.free_later, self._id)
        self._storage_level = storageLevel
        self.is_cached = True
        return self

    def cache(self) -> RDD[Any]:
        """persist() at MEMORY_ONLY."""
        return self.persist(StorageLevel.MEMORY_ONLY)

    def unpersist(self, blocking: bool = False) -> RDD[Any]:
        """Forget persisted partitions; returns self."""
        if not self._block_backed:
            self.ctx._block_locations.remove_rdd(self._id)
        self._storage_level = NOT_STORED
        self.is_cached = False
        return self

    def getStorageLevel(self) -> StorageLevel:
        return self._storage_level

    def _hold_blocks(self, partitions: list[list[Any]], near: Sequence[tuple[str, ...]] = ()) -> None:
        """Make this an in-memory RDD: its partitions are blocks in the block manager while it lives
        (partition i near the executors ``near[i]``, when given)."""
        blocks = self.ctx._block_locations
        blocks.hold(self._id, partitions, near)
        self._block_backed = True
        self._block_finalizer = weakref.finalize(self, blocks.free_later, self._id)

    # -- checkpointing -----------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Mark for checkpointing: written under the checkpoint dir after the next job on it."""
        if self.ctx._checkpoint_dir is None:
            raise DStreamError("Checkpoint directory has not been set in the Context (call setCheckpointDir)")
        self._checkpoint_marked = True

    def isCheckpointed(self) -> bool:
        return self.is_checkpointed

    def localCheckpoint(self) -> None:
        """Mark for local checkpointing: after the next job on it, its lineage is cut to its cached blocks.

        Persists the RDD (MEMORY_AND_DISK unless it already has a level). Faster than checkpoint()
        and needs no checkpoint directory, but not fault tolerant: a lost block cannot be
        recomputed (dstream.rdd.local_checkpoint). No-op on an RDD already checkpointed.

        Raises:
            DStreamStateError: the RDD is marked for reliable checkpointing (checkpoint()).
        """
        if self.is_checkpointed:
            return
        if self._checkpoint_marked:
            raise DStreamStateError(
                f"RDD {self._id} is already marked for reliable checkpointing (checkpoint()); "
                "it cannot also be checkpointed locally"
            )
        if not self._storage_level.is_stored:
            self.persist(StorageLevel.MEMORY_AND_DISK)
        self._local_checkpoint_marked = True

    def isLocallyCheckpointed(self) -> bool:
        """Whether localCheckpoint() was called on this RDD (before or after its lineage was cut)."""
        return self._local_checkpoint_marked or isinstance(self._node, LocalCheckpointNode)

    def getCheckpointFile(self) -> str | None:
        """The checkpoint directory URL of this RDD, once checkpointed."""
        return self._checkpoint_dir

    def _write_checkpoint(self, dir_url: str, storage_options: dict[str, Any] | None = None) -> None:
        """Compute every partition, write it with checkpoint.rdd_data and commit (does not cut)."""
        checkpointing.write_checkpoint(self, dir_url, self._ckpt_options(storage_options))

    def _cut_lineage(self, dir_url: str, storage_options: dict[str, Any] | None = None) -> None:
        """Replace the lineage by a read of the committed checkpoint at ``dir_url``."""
        checkpointing.cut_lineage(self, dir_url, self._ckpt_options(storage_options))

    def _ckpt_options(self, storage_options: dict[str, Any] | None) -> dict[str, Any]:
        if storage_options is not None:
            return storage_options
        return dict(self.ctx._checkpoint_storage_options)

    # -- debugging -----------------------------------------------------------------------------------
    def toDebugString(self) -> bytes:
        """The lineage, one RDD per line, shuffles indented (bytes, like PySpark)."""
        lines: list[str] = []
        seen: set[int] = set()
        stack: list[tuple[RDD[Any], int, bool]] = [(self, 0, True)]
        while stack:
            rdd, depth, stage_start = stack.pop()
            lines.append(rdd._debug_line(depth, stage_start, rdd._id in seen))
            if rdd._id in seen:
                continue
            seen.add(rdd._id)
            for dep in reversed(rdd._node.deps):
                narrow = isinstance(dep, NarrowDependency)
                stack.append((dep.rdd, depth if narrow else depth + 1, not narrow))
        return "\n".join(lines).encode("utf-8")

    def _debug_line(self, depth: int, stage_start: bool, repeated: bool) -> str:
        if stage_start:
            prefix = ("    " * (depth - 1) + " +-" if depth else "") + f"({self.getNumPartitions()}) "
        else:
            prefix = "    " * depth + " |  "
        level = f" [{self._storage_level}]" if self._storage_level.is_stored else ""
        ckpt = f" checkpoint={self._checkpoint_dir}" if self.is_checkpointed else ""
        name = f"{self._name} " if self._name else ""
        more = " (shown above)" if repeated else ""
        return f"{prefix}{name}{self._node.label}[{self._id}]{level}{ckpt}{more}"
