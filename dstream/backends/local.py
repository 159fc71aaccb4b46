"""The local backend: tasks run on a thread pool in the driver process (masters ``local[...]``).

Every task is pickled on the way in and its result on the way out, as Spark's local mode does, so
that a closure capturing a lock or a socket fails here exactly as it would on a cluster. The
``inline`` mode runs tasks one after the other in the calling thread: same serialization, no
thread, fully deterministic ordering of side effects (tests).
"""

from __future__ import annotations

import pickle
import threading
import traceback
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cloudpickle

from dstream.backends.base import ExecutionBackend, Task, TaskFailedError, TaskNotSerializableError
from dstream.backends.executor_env import ExecutorEnv, running_in
from dstream.errors import DStreamStateError

PICKLE_PROTOCOL = 5


@dataclass(frozen=True)
class SerializedTask:
    """A pickled task as a transport would carry it: the pickle stream and its out-of-band buffers.

    Protocol 5 lets a large immutable block (a partition of text, packed by `dstream.rdd.tasks`)
    travel beside the stream instead of being copied into it, as Dask sends frames.
    """

    payload: bytes
    buffers: tuple[memoryview, ...]


def serialize_task(task: Task) -> SerializedTask:
    """Cloudpickle a task, turning any pickling failure into a TaskNotSerializableError naming it."""
    buffers: list[memoryview] = []
    try:
        data: bytes = cloudpickle.dumps(
            task, protocol=PICKLE_PROTOCOL, buffer_callback=lambda b: buffers.append(b.raw())
        )
        return SerializedTask(data, tuple(buffers))
    except Exception as exc:
        raise TaskNotSerializableError(
            f"{task.describe()} is not serializable: {type(exc).__name__}: {exc}. A function passed to"
            " an RDD operation captures an object that cannot be shipped to a worker (a lock, a socket,"
            " a Context...); create it inside the function instead"
        ) from exc


def run_serialized(serialized: SerializedTask) -> tuple[bool, bytes]:
    """Worker side: unpickle, run, pickle the outcome. Returns (ok, pickled result or error)."""
    try:
        task = pickle.loads(serialized.payload, buffers=serialized.buffers)
        return True, pickle.dumps(task.run(), protocol=PICKLE_PROTOCOL)
    except Exception as exc:
        exc.add_note(
            "Task traceback (most recent call last):\n" + "".join(traceback.format_tb(exc.__traceback__))
        )
        return False, _pickle_error(exc)


def _pickle_error(exc: Exception) -> bytes:
    try:
        data: bytes = cloudpickle.dumps(exc, protocol=PICKLE_PROTOCOL)
        pickle.loads(data)  # some exceptions pickle but cannot be rebuilt
        return data
    except Exception:
        text = "".join(traceback.format_exception(exc))
        return pickle.dumps(TaskFailedError(f"{type(exc).__name__}: {exc}\n{text}"), protocol=PICKLE_PROTOCOL)


def unpack_outcome(ok: bool, data: bytes) -> Any:
    """Driver side: return the result, or raise the task's exception."""
    value = pickle.loads(data)
    if ok:
        return value
    raise value


class LocalBackend(ExecutionBackend):
    """A thread pool of ``threads`` workers, or inline execution in the caller's thread."""

    def __init__(self, threads: int, inline: bool = False) -> None:
        self._threads = threads
        self._inline = inline
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._env = ExecutorEnv("driver")

    @property
    def default_parallelism(self) -> int:
        return self._threads

    @property
    def executor_env(self) -> ExecutorEnv:
        return self._env

    def run_tasks(self, tasks: Sequence[Task]) -> list[Any]:
        payloads = [serialize_task(t) for t in tasks]
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
            return run_serialized(serialized)

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
