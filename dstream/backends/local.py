"""The local backend: tasks run on a thread pool in the driver process (masters ``local[...]``).

Every task is pickled on the way in and its result on the way out, as Spark's local mode does, so
that a closure capturing a lock or a socket fails here exactly as it would on a cluster. The
``inline`` mode runs tasks one after the other in the calling thread: same serialization, no
thread, fully deterministic ordering of side effects (tests).

The driver process is the only executor: its `ExecutorEnv` holds a `LocalBlockManager`, where task
inputs are resolved and task outputs kept, so only code, references, actions' results and metadata
are pickled across the boundary. `tap_payloads` lets a measurement see every payload that crosses it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any

from dstream.backends.base import ExecutionBackend, Task
from dstream.backends.executor_env import ExecutorEnv, running_in
from dstream.backends.local_blocks import LocalBlockManager
from dstream.backends.serialization import SerializedTask, run_serialized, serialize_task, unpack_outcome
from dstream.errors import DStreamStateError


class LocalBackend(ExecutionBackend):
    """A thread pool of ``threads`` workers, or inline execution in the caller's thread."""

    def __init__(self, threads: int, inline: bool = False) -> None:
        self._threads = threads
        self._inline = inline
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._env = ExecutorEnv("driver", LocalBlockManager("driver"))
        self._taps: list[Callable[[str, int, bytes], None]] = []

    @property
    def default_parallelism(self) -> int:
        return self._threads

    @property
    def executor_env(self) -> ExecutorEnv:
        return self._env

    def tap_payloads(self, tap: Callable[[str, int, bytes], None]) -> None:
        """Call `tap(kind, nbytes, payload)` for every task ("task") and outcome ("result") pickled.

        For measurements (what crosses the task boundary); a tap runs on the task's thread.
        """
        self._taps = [*self._taps, tap]

    def run_tasks(self, tasks: Sequence[Task]) -> list[Any]:
        payloads = [serialize_task(t) for t in tasks]
        for p in payloads if self._taps else ():
            for tap in self._taps:
                tap("task", p.nbytes, p.payload + b"".join(bytes(b) for b in p.buffers))
        if self._inline or len(payloads) <= 1:
            self._check_running()
            return [unpack_outcome(*self._run(p)) for p in payloads]
        pool = self._executor()
        futures = [pool.submit(self._run, p) for p in payloads]
        try:
            return [unpack_outcome(*f.result()) for f in futures]
        except CancelledError:
            raise DStreamStateError("the job was cancelled: the Context was stopped while it ran") from None
        finally:
            _cancel(futures)

    def _run(self, serialized: SerializedTask) -> tuple[bool, bytes]:
        with running_in(self._env):
            outcome = run_serialized(serialized)
        for tap in self._taps:
            tap("result", len(outcome[1]), outcome[1])
        return outcome

    def _check_running(self) -> None:
        if self._stopped:
            raise DStreamStateError("the local backend has been stopped; create a new Context")

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            self._check_running()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="dstream-task")
            return self._pool

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._env.close()


def _cancel(futures: list[Future[tuple[bool, bytes]]]) -> None:
    for f in futures:
        f.cancel()
