"""The execution backend contract: run a list of tasks, return their results in order, or raise.

Operators never talk to a backend directly; the DAG scheduler (dstream.rdd.dag_scheduler) cuts a job
into tasks and hands them here. A task is any object with a ``run()`` method that, together with
everything it references, survives cloudpickle; its result must survive pickle. The backend also
owns the block managers where data lives between tasks (`block_manager`, and each executor's
`ExecutorEnv.block_manager`). That is the whole contract a Dask backend has to honour
(docs/architecture.md section 3), so every backend is tested with the
same suite.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from dstream.backends.block_manager import BlockManager
from dstream.backends.executor_env import ExecutorEnv
from dstream.errors import DStreamError


class Task(Protocol):
    """One unit of work: computes one partition of a stage."""

    def run(self) -> Any:
        """Compute and return the task's result (a picklable value)."""

    def describe(self) -> str:
        """A short human name for error messages, e.g. ``'task 3 of stage 7 (collect)'``."""


def preferred_locations_of(task: Task) -> tuple[str, ...]:
    """The executors a task prefers to run on, most preferred first (empty: anywhere).

    A task may declare them as a ``preferred_locations`` attribute (the DAG scheduler's tasks do:
    where their inputs are). A preference only: a backend that can place tasks (Dask) tries those
    executors first and runs the task elsewhere when they are gone or busy; the local backend, whose
    one executor is the driver, ignores it.
    """
    found = getattr(task, "preferred_locations", ())
    return tuple(found) if isinstance(found, tuple | list) else ()


class TaskNotSerializableError(DStreamError, TypeError):
    """A task (usually a user closure it captures) cannot be pickled for shipping to a worker."""


class TaskFailedError(DStreamError):
    """A task raised and its exception could not be brought back as is (it was not picklable)."""


class ExecutionBackend(abc.ABC):
    """Runs tasks somewhere and brings their results back by value."""

    @property
    @abc.abstractmethod
    def default_parallelism(self) -> int:
        """How many tasks can usefully run at once (PySpark's defaultParallelism)."""

    @property
    @abc.abstractmethod
    def executor_env(self) -> ExecutorEnv:
        """The driver-side executor's environment (where driver-hosted receivers keep their state)."""

    @property
    def block_manager(self) -> BlockManager:
        """The driver's handle on the backend's blocks (dstream.backends.block_manager).

        The local backend's is its one executor's manager; a cluster backend returns a client that
        reaches every worker's. The DAG scheduler puts in-memory partitions and removes freed
        blocks through it; tasks use their own executor's (`current_executor_env().block_manager`).
        """
        return self.executor_env.block_manager

    @abc.abstractmethod
    def run_tasks(self, tasks: Sequence[Task]) -> list[Any]:
        """Run every task and return their results in the order of ``tasks``.

        Raises:
            TaskNotSerializableError: a task could not be pickled; nothing ran for it.
            BaseException: the first failing task's own exception (same type and message),
                with the worker-side traceback added as a note.
        """

    def check_reachable_by_workers(self, url: str, what: str) -> None:
        """Refuse a storage location that tasks would write or read but the workers cannot reach.

        The local backend's tasks run in the driver, which reaches everything: the default accepts all.

        Args:
            url: an fsspec URL or a local path.
            what: names the use for the message, e.g. ``"checkpoint directory"``.

        Raises:
            DStreamValueError: the workers cannot reach `url` (the message says why and what to use).
        """
        return None  # a hook with a default: the local backend reaches everything

    def add_executor_listener(
        self, on_lost: Callable[[str], None], on_added: Callable[[str], None] | None = None
    ) -> None:
        """Call `on_lost(executor_id)` when an executor leaves (a cluster backend's worker died or was
        declared dead), and `on_added(executor_id)` when one joins.

        The listeners must be quick and must not call the backend (they may run on its event loop).
        The local backend's one executor is the driver, which never leaves: the default ignores them.
        """
        return None  # a hook with a default: nothing to report in a single process

    @abc.abstractmethod
    def stop(self) -> None:
        """Release workers and threads. Idempotent."""
