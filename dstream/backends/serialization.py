"""How tasks and their outcomes cross the task boundary: one module for every backend.

Functions travel with cloudpickle, data with pickle protocol 5 (DESIGN.md section 3). A task is
pickled on the driver (`serialize_task`), run and its outcome pickled on the executor
(`run_serialized`), and the outcome unpickled on the driver (`unpack_outcome`). The local backend
does all three in one process, as Spark's local mode does, so that a closure capturing a lock or a
socket fails here exactly as it would on a cluster; a Dask backend sends the same payloads as
frames. Since task inputs are block references (dstream.backends.block_manager), these payloads
hold code, references, actions' results and small metadata, never partitions or shuffle buckets.
"""

from __future__ import annotations

import pickle
import traceback
from dataclasses import dataclass
from typing import Any

import cloudpickle

from dstream.backends.base import Task, TaskFailedError, TaskNotSerializableError

PICKLE_PROTOCOL = 5


@dataclass(frozen=True)
class SerializedTask:
    """A pickled task as a transport would carry it: the pickle stream and its out-of-band buffers."""

    payload: bytes
    buffers: tuple[memoryview, ...]

    @property
    def nbytes(self) -> int:
        """Bytes that cross the boundary: the stream and every buffer."""
        return len(self.payload) + sum(b.nbytes for b in self.buffers)


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
    """Executor side: unpickle, run, pickle the outcome. Returns (ok, pickled result or error)."""
    try:
        task = pickle.loads(serialized.payload, buffers=serialized.buffers)
        return True, pickle.dumps(task.run(), protocol=PICKLE_PROTOCOL)
    except Exception as exc:
        exc.add_note(
            "Task traceback (most recent call last):\n" + "".join(traceback.format_tb(exc.__traceback__))
        )
        return False, pickle_error(exc)


def pickle_error(exc: Exception) -> bytes:
    """The exception pickled so the driver can raise it as is, else a TaskFailedError with its text."""
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
