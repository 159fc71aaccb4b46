"""The executor environment: per-executor services that tasks and receivers share (Spark's SparkEnv).

An executor (the driver process for the local backend, a worker process for the Dask backend) holds
state that outlives one task: received blocks, open receiver write-ahead logs. Instead of
process-global registries, each backend owns one `ExecutorEnv` per executor and makes it current
while a task runs there (`running_in`); code inside a task finds it with `current_executor_env()`,
and code on the driver reaches the driver's executor through `Context.executor_env`. A service is
created on first use under a name (`service(name, factory)`) and closed with the environment, so
stopping a Context releases what its tasks and receivers left behind.

The executor's block manager (dstream.backends.block_manager) is the one service every backend
provides: tasks resolve their input references through `env.block_manager`, shuffle map tasks and
persisted partitions put their blocks there, and receivers store through it. An environment made
without one (tests, a bare receiver tracker) keeps its blocks in process (`LocalBlockManager`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from dstream.backends.block_manager import BlockManager
from dstream.backends.local_blocks import LocalBlockManager
from dstream.errors import DStreamStateError

log = logging.getLogger(__name__)

T = TypeVar("T")

_current: ContextVar[ExecutorEnv | None] = ContextVar("dstream_executor_env", default=None)


class ExecutorEnv:
    """Named services of one executor, created on first use and closed together.

    Args:
        executor_id: names the executor in messages (e.g. "driver", a Dask worker's address).
        block_manager: the executor's block manager (default: an in-process `LocalBlockManager`).
    """

    def __init__(self, executor_id: str, block_manager: BlockManager | None = None) -> None:
        self.executor_id = executor_id
        self.block_manager: BlockManager = (
            block_manager if block_manager is not None else LocalBlockManager(executor_id)
        )
        self._services: dict[str, Any] = {}
        self._lock = threading.Lock()

    def service(self, name: str, factory: Callable[[], T]) -> T:
        """The service registered under `name`, made by `factory()` the first time."""
        with self._lock:
            found = self._services.get(name)
            if found is None:
                found = self._services[name] = factory()
            return found

    def close(self) -> None:
        """Close every service that has a `close()`, then drop the blocks (idempotent).

        Later uses create fresh services; the block manager stays usable (empty).
        """
        with self._lock:
            services, self._services = self._services, {}
        for name, service in services.items():
            close = getattr(service, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception:
                log.warning("closing executor service %r of %s failed", name, self.executor_id, exc_info=True)
        self.block_manager.close()

    def __repr__(self) -> str:
        return f"ExecutorEnv({self.executor_id!r})"


def current_executor_env() -> ExecutorEnv:
    """The environment of the executor this code runs on (inside a task or a receiver).

    Raises:
        DStreamStateError: called outside a task: no backend made an environment current.
    """
    env = _current.get()
    if env is None:
        raise DStreamStateError(
            "no executor environment is current: this function runs inside a task or a receiver"
        )
    return env


@contextlib.contextmanager
def running_in(env: ExecutorEnv) -> Iterator[ExecutorEnv]:
    """Make `env` current in this thread (and context) for the duration of the block."""
    token = _current.set(env)
    try:
        yield env
    finally:
        _current.reset(token)
