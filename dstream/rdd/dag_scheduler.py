"""The DAG scheduler: cuts a job into stages at shuffle dependencies and runs them on a backend.

For a job on an RDD it (1) finds the shuffles the RDD's lineage reads whose map outputs are not all known to
the map-output tracker, computes their parents' shuffles first, then runs the missing map tasks (each writes
its buckets into its executor's block manager and returns a `MapStatus`); (2) pickles the result stage once
and builds one task per requested partition with *references* to what it reads (persisted and in-memory
blocks from the block-location table, shuffle buckets from the tracker) and the executors it prefers
(dstream.rdd.locality: the nearest input's live holders); (3) runs the tasks, records where the blocks they
made for persisted RDDs are, and merges the accumulator sums they return (dstream.accumulators). Only
actions' results and metadata come back; no partition crosses the driver. Narrow dependencies never cross a
task boundary: the pickled RDD computes them as a chain of iterators inside the task.

A task that finds a referenced block gone raises `BlockLostError` (Spark's FetchFailed). The
scheduler forgets that block (a map output in the tracker, a partition in the location table),
tells its recovery listeners (`BlockRecovery(how="lineage")`) and runs the job again, which
recomputes exactly the missing blocks from lineage; at most `LOST_BLOCK_ATTEMPTS_MAX` attempts.
A block RDD task that read a received block's WAL copy reports `BlockRecovery(how="wal")` with
its result, and the scheduler passes it on the same way.

A cluster backend also says when an executor leaves (`executor_lost`, wired by the Context): its map
outputs and block locations are forgotten at once, so the next stage re-runs the lost map tasks
without a failed fetch first, and results of a running stage that still name it are dropped
(`LostExecutors`); a shuffle whose map outputs were dropped so is completed by running those map
tasks again, within `LOST_BLOCK_ATTEMPTS_MAX` rounds.

Steps (2) happen under the lineage lock, which `RDD._cut_lineage` also takes, so the pickled
lineage and the inputs resolved for it always describe the same graph.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import cloudpickle

from dstream.accumulators import AccumulatorRegistry
from dstream.backends.base import ExecutionBackend, TaskNotSerializableError
from dstream.backends.block_manager import BlockId, BlockLostError, BlockRef, RDDBlockId, ShuffleBlockId
from dstream.broadcast import BroadcastDestroyedError
from dstream.errors import DStreamError, DStreamStateError, DStreamValueError, JobFailedError
from dstream.rdd.block_recovery import BlockRecovery, RecoveryListener
from dstream.rdd.executor_loss import LostExecutors
from dstream.rdd.locality import preferred_locations
from dstream.rdd.map_output_tracker import MapOutputTracker, MapStatus
from dstream.rdd.nodes import NarrowDependency
from dstream.rdd.shuffle import PICKLE_PROTOCOL, ShuffleDependency, ShuffleMapWriter
from dstream.rdd.storage import BlockLocations
from dstream.rdd.tasks import StageTask, TaskInputs, TaskResult

if TYPE_CHECKING:
    from dstream.rdd.rdd import RDD

log = logging.getLogger(__name__)

PartitionFunc = Callable[[Iterator[Any]], Any]

LOST_BLOCK_ATTEMPTS_MAX = 4


class DAGScheduler:
    """Runs jobs for one Context."""

    def __init__(
        self,
        backend: ExecutionBackend,
        blocks: BlockLocations,
        map_outputs: MapOutputTracker,
        accumulators: AccumulatorRegistry | None = None,
    ) -> None:
        self.backend = backend
        self.accumulators = AccumulatorRegistry() if accumulators is None else accumulators
        self.blocks = blocks
        self.map_outputs = map_outputs
        self.lineage_lock = threading.RLock()
        self._stage_ids = itertools.count()
        self._stopped = False
        self._recovery_listeners: list[RecoveryListener] = []
        self.lost_executors = LostExecutors()
        # Held while a loss is applied and while results are recorded, so that no result naming a
        # lost executor is recorded after the loss swept the tables.
        self._membership_lock = threading.Lock()

    def stop(self) -> None:
        self._stopped = True

    def add_recovery_listener(self, listener: RecoveryListener) -> None:
        """Call `listener(BlockRecovery)` whenever a lost block is recomputed or read from the WAL."""
        self._recovery_listeners = [*self._recovery_listeners, listener]

    def remove_recovery_listener(self, listener: RecoveryListener) -> None:
        self._recovery_listeners = [x for x in self._recovery_listeners if x is not listener]

    def executor_lost(self, executor_id: str) -> None:
        """Forget every block and map output `executor_id` held (a cluster backend's worker died).

        Quick and free of I/O: the backend may call it on its event loop.
        """
        with self._membership_lock:
            self.lost_executors.lost(executor_id)
            self.map_outputs.executor_lost(executor_id)
            self.blocks.executor_lost(executor_id)

    def executor_added(self, executor_id: str) -> None:
        """`executor_id` joined (a reused address is alive again): its results count."""
        with self._membership_lock:
            self.lost_executors.added(executor_id)

    def record_map_outputs(self, shuffle_id: int, num_maps: int, statuses: dict[int, MapStatus]) -> None:
        """Register map outputs a stage returned, but not those of an executor known lost."""
        with self._membership_lock:
            for map_index, status in statuses.items():
                if not self.lost_executors.is_lost(status.location):
                    self.map_outputs.register(shuffle_id, num_maps, map_index, status)

    def record_new_blocks(self, new_blocks: dict[tuple[int, int], tuple[str, ...]]) -> None:
        """Record where a stage stored persisted partitions, leaving out executors known lost."""
        orphans: list[RDDBlockId] = []
        with self._membership_lock:
            for (rdd_id, split), locations in new_blocks.items():
                live = self.lost_executors.live(locations)
                if live and not self.blocks.put(rdd_id, split, live):
                    # Unpersisted (or freed) while the job ran: nobody will read or remove it later.
                    orphans.append(RDDBlockId(rdd_id, split))
        for block_id in orphans:  # outside the lock: this calls the workers
            self.backend.block_manager.remove(block_id)

    def run_job(
        self,
        rdd: RDD[Any],
        func: PartitionFunc,
        partitions: Sequence[int] | None = None,
        description: str = "job",
    ) -> list[Any]:
        """Return ``[func(iterator of partition p) for p in partitions]`` (all partitions by default).

        Raises:
            JobFailedError: a task raised (the task's exception is the ``__cause__``), or blocks kept
                being lost after `LOST_BLOCK_ATTEMPTS_MAX` attempts.
            TaskNotSerializableError: a function or record could not be pickled.
        """
        if self._stopped:
            raise DStreamStateError("cannot run a job: the Context has been stopped")
        n = rdd.getNumPartitions()
        parts = list(range(n)) if partitions is None else list(partitions)
        bad = [p for p in parts if not (isinstance(p, int) and 0 <= p < n)]
        if bad:
            raise DStreamValueError(f"partitions {bad} do not exist; the RDD has {n} partitions")
        if not parts:
            return []
        for attempt in range(1, LOST_BLOCK_ATTEMPTS_MAX + 1):
            try:
                self._ensure_shuffles(rdd)
                return self._run_stage(rdd, func, parts, description)
            except BlockLostError as lost:
                if attempt == LOST_BLOCK_ATTEMPTS_MAX:
                    raise JobFailedError(
                        f"Job aborted: {description} lost blocks in {attempt} attempts in a row; last: {lost}"
                    ) from lost
                self._forget(lost.block_id)
                self._report(BlockRecovery(lost.block_id.name, "lineage", str(lost)))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _forget(self, block_id: BlockId) -> None:
        """Forget the lost block and its siblings that are lost too (an executor dies with many blocks).

        One sweep per loss, over the same shuffle's map outputs or the same RDD's partitions, so a
        job needs one more attempt per lost executor, not per lost block.
        """
        bm = self.backend.block_manager
        if isinstance(block_id, ShuffleBlockId):
            sid = block_id.shuffle_id
            self.map_outputs.forget(sid, block_id.map_index)
            for m in self.map_outputs.held(sid):
                if not bm.locations(ShuffleBlockId(sid, m, block_id.reduce_index)):
                    self.map_outputs.forget(sid, m)
        elif isinstance(block_id, RDDBlockId):
            self.blocks.forget(block_id.rdd_id, block_id.split)
            for split in self.blocks.splits(block_id.rdd_id):
                if not bm.locations(RDDBlockId(block_id.rdd_id, split)):
                    self.blocks.forget(block_id.rdd_id, split)

    def _report(self, recovery: BlockRecovery) -> None:
        log.warning("recovering lost block %s by %s: %s", recovery.block, recovery.how, recovery.detail)
        for listener in self._recovery_listeners:
            try:
                listener(recovery)
            except Exception:
                log.exception("block recovery listener %r raised", listener)

    def _ensure_shuffles(self, rdd: RDD[Any]) -> None:
        for dep in self._nearest_shuffles(rdd):
            parent = dep.rdd
            num_maps = parent.getNumPartitions()
            if not self.map_outputs.missing(dep.shuffle_id, num_maps):
                continue
            with self.map_outputs.compute_lock(dep.shuffle_id):
                # More than one round only when an executor died during the map stage: the outputs
                # it had made were dropped, and those map tasks run again.
                for _ in range(LOST_BLOCK_ATTEMPTS_MAX):
                    missing = self.map_outputs.missing(dep.shuffle_id, num_maps)
                    if not missing:
                        break
                    self._ensure_shuffles(parent)
                    what = f"shuffle map stage (shuffle {dep.shuffle_id})"
                    statuses: list[MapStatus] = self._run_stage(parent, ShuffleMapWriter(dep), missing, what)
                    made = dict(zip(missing, statuses, strict=True))
                    self.record_map_outputs(dep.shuffle_id, num_maps, made)

    def _nearest_shuffles(self, rdd: RDD[Any]) -> list[ShuffleDependency]:
        """Shuffle dependencies reachable from ``rdd`` through narrow dependencies only."""
        found: dict[int, ShuffleDependency] = {}
        seen: set[int] = set()
        stack = [rdd]
        while stack:
            r = stack.pop()
            if r._id in seen:
                continue
            seen.add(r._id)
            for dep in r._node.deps:
                if isinstance(dep, ShuffleDependency):
                    found.setdefault(dep.shuffle_id, dep)
                else:
                    stack.append(dep.rdd)
        return list(found.values())

    def _run_stage(self, rdd: RDD[Any], func: Any, parts: list[int], description: str) -> list[Any]:
        stage = f"stage {next(self._stage_ids)} ({description} on RDD {rdd._id})"
        self.blocks.drain_freed()  # a safe point: free what finalizers queued since the last stage
        self.map_outputs.drain_freed()
        with self.lineage_lock:
            binary = _pickle_stage(rdd, func, stage)
            tasks = []
            for p in parts:
                inputs, preferred = self._resolve_inputs(rdd, p)
                tasks.append(StageTask(binary, p, inputs, stage, preferred))
        try:
            results: list[TaskResult] = self.backend.run_tasks(tasks)
        except (TaskNotSerializableError, JobFailedError, DStreamStateError, BlockLostError):
            raise
        except Exception as exc:
            raise JobFailedError(
                f"Job aborted: a task of {stage} failed: {type(exc).__name__}: {exc}"
            ) from exc
        for res in results:
            self.record_new_blocks(res.new_blocks)
            self.accumulators.merge(res.accumulator_updates)
            for recovery in res.recoveries:
                self._report(recovery)
        return [res.value for res in results]

    def _resolve_inputs(self, rdd: RDD[Any], split: int) -> tuple[TaskInputs, tuple[str, ...]]:
        """References to what partition ``split`` of ``rdd`` reads (narrow deps walked), and the
        executors its task prefers (dstream.rdd.locality: the nearest input's live holders)."""
        inputs = TaskInputs()
        groups: list[tuple[str, ...]] = []  # candidate locations, nearest input first
        seen: set[tuple[int, int]] = set()
        stack = [(rdd, split)]
        while stack:
            r, s = stack.pop()
            if (r._id, s) in seen:
                continue
            seen.add((r._id, s))
            groups.append(r._node.preferred_locations(s))
            if r._block_backed or r._storage_level.is_stored:
                locations = self.blocks.get(r._id, s)
                if locations is None and r._block_backed:
                    locations = self.blocks.restore(r._id, s)  # lost with its executor: put it again
                if locations is not None:
                    inputs.blocks[(r._id, s)] = BlockRef(RDDBlockId(r._id, s), locations)
                    groups.append(locations)
                    continue
                if r._block_backed:
                    raise DStreamError(
                        f"partition {s} of in-memory RDD {r._id} is gone (RDD freed or Context stopped)"
                    )
            parents: list[tuple[RDD[Any], int]] = []
            for dep in r._node.deps:
                if isinstance(dep, NarrowDependency):
                    parents.extend((dep.rdd, ps) for ps in dep.parent_splits(s))
                else:
                    inputs.shuffles[(dep.shuffle_id, s)] = self._shuffle_refs(dep, s)
                    groups.append(self.map_outputs.preferred_locations(dep.shuffle_id, s))
            stack.extend(reversed(parents))  # the first parent is walked first
        return inputs, preferred_locations(groups, self.lost_executors.is_lost)

    def _shuffle_refs(self, dep: ShuffleDependency, reduce_index: int) -> tuple[BlockRef, ...]:
        """References to a reduce task's buckets; a map output lost since the shuffle was computed
        (its executor left meanwhile) is a lost block, which `run_job` recomputes."""
        missing = self.map_outputs.missing(dep.shuffle_id, dep.rdd.getNumPartitions())
        if missing:
            block = ShuffleBlockId(dep.shuffle_id, missing[0], reduce_index)
            raise BlockLostError(block, "its executor left after the map stage ran")
        return self.map_outputs.refs(dep.shuffle_id, reduce_index)


def _parents_first(rdd: RDD[Any]) -> list[RDD[Any]]:
    """The stage's RDDs (through narrow dependencies), every parent before its children."""
    order: list[RDD[Any]] = []
    done: set[int] = set()
    stack: list[tuple[RDD[Any], bool]] = [(rdd, False)]
    while stack:
        r, expanded = stack.pop()
        if r._id in done:
            continue
        if expanded:
            done.add(r._id)
            order.append(r)
            continue
        stack.append((r, True))
        stack.extend((d.rdd, False) for d in r._node.deps if isinstance(d, NarrowDependency))
    return order


def _pickle_stage(rdd: RDD[Any], func: Any, stage: str) -> bytes:
    # Pickling the lineage parents-first makes every parent a memo reference by the time its
    # child is pickled, so pickle's recursion depth stays flat however long the lineage is.
    try:
        binary: bytes = cloudpickle.dumps((_parents_first(rdd), rdd, func), protocol=PICKLE_PROTOCOL)
        return binary
    except BroadcastDestroyedError:
        raise  # its own message says what is wrong; it is not a capture problem
    except Exception as exc:
        raise TaskNotSerializableError(
            f"{stage} is not serializable: {type(exc).__name__}: {exc}. A function passed to an RDD"
            " operation captures an object that cannot be shipped to a worker (a lock, a socket, a"
            " Context...); create it inside the function instead"
        ) from exc
