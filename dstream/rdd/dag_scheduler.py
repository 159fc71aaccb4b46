"""The DAG scheduler: cuts a job into stages at shuffle dependencies and runs them on a backend.

For a job on an RDD it (1) finds the shuffles the RDD's lineage reads that have no map outputs
yet, computes their parents' shuffles first, then runs each map stage; (2) pickles the result
stage once and builds one task per requested partition with the inputs the driver holds for it
(persisted blocks, in-memory sources, shuffle buckets); (3) runs the tasks, keeps the blocks they
computed for persisted RDDs and merges the accumulator sums they return (dstream.accumulators).
Narrow dependencies never cross a task boundary: the pickled RDD computes them as a chain of
iterators inside the task.

Steps (2) happen under the lineage lock, which `RDD._cut_lineage` also takes, so the pickled
lineage and the inputs resolved for it always describe the same graph.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import cloudpickle

from dstream.accumulators import AccumulatorRegistry
from dstream.backends.base import ExecutionBackend, TaskNotSerializableError
from dstream.broadcast import BroadcastDestroyedError
from dstream.errors import DStreamError, DStreamStateError, DStreamValueError, JobFailedError
from dstream.rdd.nodes import NarrowDependency
from dstream.rdd.shuffle import PICKLE_PROTOCOL, ShuffleDependency, ShuffleStore, write_buckets
from dstream.rdd.storage import PersistedPartitionStore
from dstream.rdd.tasks import StageTask, TaskInputs, TaskResult

if TYPE_CHECKING:
    from dstream.rdd.rdd import RDD

PartitionFunc = Callable[[Iterator[Any]], Any]


class DAGScheduler:
    """Runs jobs for one Context."""

    def __init__(
        self,
        backend: ExecutionBackend,
        blocks: PersistedPartitionStore,
        shuffles: ShuffleStore,
        accumulators: AccumulatorRegistry | None = None,
    ) -> None:
        self.backend = backend
        self.accumulators = AccumulatorRegistry() if accumulators is None else accumulators
        self.blocks = blocks
        self.shuffles = shuffles
        self.lineage_lock = threading.RLock()
        self._stage_ids = itertools.count()
        self._stopped = False

    def stop(self) -> None:
        self._stopped = True

    def run_job(
        self,
        rdd: RDD[Any],
        func: PartitionFunc,
        partitions: Sequence[int] | None = None,
        description: str = "job",
    ) -> list[Any]:
        """Return ``[func(iterator of partition p) for p in partitions]`` (all partitions by default).

        Raises:
            JobFailedError: a task raised; the task's exception is the ``__cause__``.
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
        self._ensure_shuffles(rdd)
        return self._run_stage(rdd, func, parts, description)

    def _ensure_shuffles(self, rdd: RDD[Any]) -> None:
        for dep in self._nearest_shuffles(rdd):
            if self.shuffles.is_complete(dep.shuffle_id):
                continue
            with self.shuffles.compute_lock(dep.shuffle_id):
                if self.shuffles.is_complete(dep.shuffle_id):
                    continue
                parent = dep.rdd
                self._ensure_shuffles(parent)
                writer = partial(write_buckets, dep=dep)
                parts = list(range(parent.getNumPartitions()))
                outputs = self._run_stage(
                    parent, writer, parts, f"shuffle map stage (shuffle {dep.shuffle_id})"
                )
                self.shuffles.put(dep.shuffle_id, outputs)

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

    def _run_stage(self, rdd: RDD[Any], func: PartitionFunc, parts: list[int], description: str) -> list[Any]:
        stage = f"stage {next(self._stage_ids)} ({description} on RDD {rdd._id})"
        with self.lineage_lock:
            binary = _pickle_stage(rdd, func, stage)
            tasks = [StageTask(binary, p, self._resolve_inputs(rdd, p), stage) for p in parts]
        try:
            results: list[TaskResult] = self.backend.run_tasks(tasks)
        except (TaskNotSerializableError, JobFailedError, DStreamStateError):
            raise
        except Exception as exc:
            raise JobFailedError(
                f"Job aborted: a task of {stage} failed: {type(exc).__name__}: {exc}"
            ) from exc
        for res in results:
            for (rdd_id, split), records in res.new_blocks.items():
                self.blocks.put(rdd_id, split, records)
            self.accumulators.merge(res.accumulator_updates)
        return [res.value for res in results]

    def _resolve_inputs(self, rdd: RDD[Any], split: int) -> TaskInputs:
        """Collect what partition ``split`` of ``rdd`` reads from the driver, walking narrow deps."""
        inputs = TaskInputs()
        seen: set[tuple[int, int]] = set()
        stack = [(rdd, split)]
        while stack:
            r, s = stack.pop()
            if (r._id, s) in seen:
                continue
            seen.add((r._id, s))
            if r._block_backed or r._storage_level.is_stored:
                block = self.blocks.get(r._id, s)
                if block is not None:
                    inputs.blocks[(r._id, s)] = block
                    continue
                if r._block_backed:
                    raise DStreamError(
                        f"partition {s} of in-memory RDD {r._id} is gone (RDD freed or Context stopped)"
                    )
            for dep in r._node.deps:
                if isinstance(dep, NarrowDependency):
                    stack.extend((dep.rdd, ps) for ps in dep.parent_splits(s))
                else:
                    inputs.shuffles[(dep.shuffle_id, s)] = self.shuffles.fetch(dep.shuffle_id, s)
        return inputs


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


def _pickle_stage(rdd: RDD[Any], func: PartitionFunc, stage: str) -> bytes:
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
