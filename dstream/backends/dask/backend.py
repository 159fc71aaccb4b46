"""The Dask execution backend: a stage's tasks as Dask futures, results back by value.

`run_tasks` serializes every task once (as the local backend does, so the same closures fail the same
way), submits the whole stage with `client.map` (one call per placement group) with a unique key per
attempt (``pure=False``: nothing is shared or cached between attempts), and gathers them in one call,
which waits for all of them and skips the failed ones. A task's own exception travels back inside its
outcome and is raised here as the local backend raises it. A future that failed for any other reason
was lost with its worker (``KilledWorker`` after Dask's own retries, or cancelled by the scheduler):
`retries.py` decides, within ``dstream.dask.taskRetriesMax``, which tasks to submit again; every worker
still alive may take them, including the nanny's replacement for the dead one. A result that arrives
late from a worker the scheduler already declared dead is dropped by the scheduler, and an attempt whose
outcome is known is never submitted again, so each task's outcome is taken exactly once.

Tasks are placed by data locality (locality.py): each is submitted preferring the live workers that
hold its input (a persisted partition, a received block, most of a shuffle's buckets), loosely, so a
dead or busy preferred worker never holds it back; one `client.map` per distinct set of workers
(``dstream.dask.locality=false`` leaves placement to Dask).

Which workers are alive is read from a `WorkerMembership` (membership.py, kept by the scheduler's
events): the block client and `worker_processes` call only workers in it, and `add_executor_listener`
hands the DAG scheduler each worker that leaves, so it forgets that worker's map outputs and blocks at
once instead of finding them lost on first use.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from dstream.backends.base import ExecutionBackend, Task, preferred_locations_of
from dstream.backends.block_manager import BlockManager
from dstream.backends.dask.broadcasts import SchedulerBroadcastRegistry
from dstream.backends.dask.cluster import ClusterHandle
from dstream.backends.dask.locality import submission_groups
from dstream.backends.dask.membership import WorkerMembership
from dstream.backends.dask.reachability import refusal
from dstream.backends.dask.retries import Done, Lost, StageAttempts
from dstream.backends.dask.worker_plugin import ExecutorPlugin, run_task
from dstream.backends.dask_blocks import DaskBlockManagerClient
from dstream.backends.executor_env import ExecutorEnv
from dstream.backends.serialization import SerializedTask, serialize_task, unpack_outcome
from dstream.broadcast import SERVICE_NAME as BROADCASTS
from dstream.config import DaskConfig
from dstream.errors import DStreamStateError, DStreamValueError
from dstream.master import MasterSpec

log = logging.getLogger(__name__)

_CANCELLED = "the job was cancelled: the Context was stopped while it ran"
# A stage whose serialized tasks weigh more than this is scattered to the workers first: the bytes go
# straight to them instead of through the scheduler inside the task graph, and each task is placed on
# the worker holding its input. Below it, one message is cheaper than a scatter's extra round trip.
SCATTER_BYTES_MIN = 1 << 20
PIDS_TIMEOUT_S = 30.0  # bound on asking every worker its pid (a paused one never answers)


class DaskBackend(ExecutionBackend):
    """Runs tasks on the workers of a Dask cluster.

    Args:
        handle: the client (and the embedded cluster it owns, if any); closed by `stop`.
        spec: the master URL it was built for.
        config: the Dask settings.
    """

    def __init__(self, handle: ClusterHandle, spec: MasterSpec, config: DaskConfig) -> None:
        self._handle = handle
        self._client = handle.client
        self._spec = spec
        self._config = config
        self._name = f"dstream-executor-{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        self._stopped = False
        self._env = ExecutorEnv("driver")
        self._broadcasts = SchedulerBroadcastRegistry(self._client, self._name)
        self._env.service(BROADCASTS, lambda: self._broadcasts)
        self._members = WorkerMembership(self._client)
        try:
            # The block plugin first: each worker's executor environment is built on its block store.
            self._blocks = DaskBlockManagerClient(
                self._client, view=self._members, started=handle.wait_for_workers
            )
            self._client.register_plugin(ExecutorPlugin(self._name), name=self._name)
        except BaseException:
            self._members.close()
            raise
        if handle.workers_expected:  # an embedded cluster: N one-thread workers, still starting
            self._parallelism = handle.workers_expected
        else:
            threads: dict[str, int] = self._client.nthreads()
            self._parallelism = max(1, sum(threads.values()))

    @property
    def client(self) -> Any:
        """The `distributed.Client` (receivers on workers are started and steered through it)."""
        return self._client

    @property
    def executor_plugin_name(self) -> str:
        """The name of this backend's `ExecutorPlugin` on every worker (worker-side code finds its env)."""
        return self._name

    @property
    def default_parallelism(self) -> int:
        return self._parallelism

    @property
    def executor_env(self) -> ExecutorEnv:
        return self._env

    @property
    def block_manager(self) -> BlockManager:
        """The driver's client of the blocks held on every worker (dstream.backends.dask_blocks)."""
        return self._blocks

    @property
    def dashboard_link(self) -> str | None:
        """The embedded cluster's dashboard URL (``dstream.dask.dashboard=true``), else None."""
        return self._handle.dashboard_link

    def wait_for_workers(self) -> None:
        """Wait (once, bounded) until an embedded cluster's workers have all started; receivers are
        placed only then, so that they spread over every worker."""
        self._handle.wait_for_workers()

    def worker_processes(self) -> dict[str, int]:
        """The process id of every worker alive, by worker address (chaos and lifecycle tests kill them).

        Only workers in the membership view are asked, and the wait is bounded: a worker that dies or
        stops answering meanwhile is left out.
        """
        self._handle.wait_for_workers()
        self._members.refresh()  # the workers' add events may still be on their way
        found = self._members.run(os.getpid, workers=None, timeout_s=PIDS_TIMEOUT_S)
        return {w: pid for w, pid in found.items() if isinstance(pid, int)}

    def alive_workers(self, *, refresh: bool = False) -> list[str]:
        """Addresses of the workers alive now, by the membership view (no round trip unless `refresh`:
        then the scheduler's worker list is applied first, so a worker that just joined is in it)."""
        if refresh:
            self._members.refresh()
        return self._members.alive()

    def run_on_workers(
        self, func: Callable[..., Any], *args: Any, workers: list[str] | None, timeout_s: float
    ) -> dict[str, Any]:
        """`Client.run(func, *args)` on those of `workers` (None: all) alive in the membership view, by
        address; a worker's own error comes back as its value.

        A worker that dies meanwhile is dropped from the call as soon as it leaves the view, instead of
        the scheduler waiting out Dask's 30 s connect timeout on it; {} when none answered within
        `timeout_s` (`WorkerMembership.run`).
        """
        return self._members.run(func, *args, workers=workers, timeout_s=timeout_s)

    def add_executor_listener(
        self, on_lost: Callable[[str], None], on_added: Callable[[str], None] | None = None
    ) -> None:
        self._members.add_listeners(on_lost, on_added)

    def check_reachable_by_workers(self, url: str, what: str) -> None:
        reason = refusal(url, what, self._spec.url, self._spec.kind == "dask", self._config.shared_filesystem)
        if reason is not None:
            raise DStreamValueError(reason)

    def run_tasks(self, tasks: Sequence[Task]) -> list[Any]:
        self._check_running()
        self._handle.wait_for_workers()
        payloads = [_out_of_band(serialize_task(t)) for t in tasks]
        preferred = [preferred_locations_of(t) if self._config.locality else () for t in tasks]
        attempts = StageAttempts([t.describe() for t in tasks], self._config.task_retries_max)
        outcomes: list[tuple[bool, bytes] | None] = [None] * len(tasks)
        todo = attempts.to_submit()
        while todo:
            self._run_round(todo, payloads, preferred, attempts, outcomes)
            todo = attempts.next_round()
        return [unpack_outcome(*outcome) for outcome in outcomes if outcome is not None]

    def _run_round(
        self,
        todo: list[int],
        payloads: list[SerializedTask],
        preferred: list[tuple[str, ...]],
        attempts: StageAttempts,
        outcomes: list[tuple[bool, bytes] | None],
    ) -> None:
        round_id = uuid.uuid4().hex[:12]
        scatter = sum(_nbytes(payloads[i]) for i in todo) >= SCATTER_BYTES_MIN
        scattered: list[Any] = []
        futures_of: dict[int, Any] = {}
        try:
            # Each round reads the membership view afresh: a retried task no longer prefers a dead worker.
            for workers, group in submission_groups(todo, preferred, self._members.alive()).items():
                futures_of.update(self._submit(round_id, group, payloads, workers, scatter, scattered))
            futures = [futures_of[i] for i in todo]
            # One gather for the stage: it waits for every future; a failed one's value is None
            # (a task's outcome never is), so its loss is read from the gathered values themselves.
            values = self._client.gather(dict(zip(todo, futures, strict=True)), errors="skip")
            for i, f in zip(todo, futures, strict=True):
                value = values.get(i)
                if value is None:
                    attempts.record(i, Lost(self._loss_reason(f)))
                else:
                    outcomes[i] = value
                    attempts.record(i, Done())
        except Exception:
            if self._stopped:
                raise DStreamStateError(_CANCELLED) from None
            raise
        finally:
            for f in [*futures_of.values(), *scattered]:
                f.release()

    def _submit(
        self,
        round_id: str,
        group: list[int],
        payloads: list[SerializedTask],
        workers: tuple[str, ...],
        scatter: bool,
        scattered: list[Any],
    ) -> dict[int, Any]:
        """Submit the tasks of `group` preferring `workers` (loosely; anywhere when empty)."""
        where: dict[str, Any] = {"workers": list(workers), "allow_other_workers": True} if workers else {}
        args: list[Any] = [payloads[i] for i in group]
        if scatter:
            # Scattered again every round (a worker that died took its scattered inputs with it), onto
            # the workers the tasks prefer, so that the payload is where the task runs.
            args = self._client.scatter(args, hash=False, workers=where.get("workers"))
            scattered.extend(args)
        futures = self._client.map(
            run_task,
            [self._name] * len(group),
            args,
            key=[f"dstream-task-{round_id}-{i}" for i in group],
            pure=False,
            **where,
        )
        return dict(zip(group, futures, strict=True))

    def _loss_reason(self, future: Any) -> str:
        if self._stopped:
            raise DStreamStateError(_CANCELLED)
        if future.status == "error":
            exc = future.exception()
            log.warning("a task attempt was lost (%s: %s); submitting it again", type(exc).__name__, exc)
            return f"{type(exc).__name__}: {exc}"
        return f"the future was {future.status}"

    def _check_running(self) -> None:
        if self._stopped:
            raise DStreamStateError("the Dask backend has been stopped; create a new Context")

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            if self._handle.cluster is None:  # an embedded cluster goes away with its plugins
                self._broadcasts.forget_all()
                self._client.unregister_worker_plugin(self._name)
        except Exception:
            log.warning("could not remove %s from the Dask scheduler", self._name, exc_info=True)
        finally:
            self._env.close()
            self._members.close()
            try:
                self._blocks.close()
            except Exception:
                log.warning("could not drop the workers' blocks", exc_info=True)
            self._handle.close()


def _nbytes(serialized: SerializedTask) -> int:
    return len(serialized.payload) + sum(memoryview(b).nbytes for b in serialized.buffers)


def _out_of_band(serialized: SerializedTask) -> SerializedTask:
    """Buffers as PickleBuffers: Dask sends them as frames beside the task (memoryviews do not pickle)."""
    buffers: Any = tuple(pickle.PickleBuffer(b) for b in serialized.buffers)
    return SerializedTask(serialized.payload, buffers)
