"""Broadcast variables (PySpark's ``pyspark.Broadcast``): a read-only value shipped once per executor.

`Context.broadcast(value)` pickles the value once, on the driver, and publishes the bytes under a
broadcast id in the `BroadcastRegistry` of the driver's executor environment
(dstream.backends.executor_env). A `Broadcast` pickles as its id only, so a task that uses it
carries a few bytes, not the value; inside a task, ``value`` resolves the id through the registry
of the executor the task runs on, which unpickles the bytes once and keeps the result for later
tasks there (Spark's per-executor cache).

Where the bytes live. On the local backend the only executor is the driver's, so the registry the
Context published into is the one tasks read. A backend whose executors are other processes (Dask)
keeps the same seam: it installs a fetcher with `BroadcastRegistry.set_fetcher` in each worker's
registry, which, on a miss, gets the bytes of an id from wherever the driver published them (for
Dask, data the driver scattered or published on the scheduler under the broadcast's id), then
caches them like a local entry. Nothing else changes: the id travels with the task, the value is
looked up where the task runs.

Lifecycle, as in PySpark: ``unpersist()`` drops the executors' unpickled copies (the next use loads
them again), ``destroy()`` drops the value everywhere; after it, using the broadcast (``value``, or
shipping it in a task) raises `BroadcastDestroyedError`. Stopping the Context closes its executor
environment, which drops every broadcast. A broadcast is not saved in checkpoints: after recovery,
re-create it (the streaming guide's lazily created singleton).
"""

from __future__ import annotations

import itertools
import pickle
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import cloudpickle

from dstream.backends.executor_env import ExecutorEnv, current_executor_env
from dstream.errors import DStreamStateError

T = TypeVar("T")

PICKLE_PROTOCOL = 5
_UNRESOLVED = object()
_ids = itertools.count()

Fetcher = Callable[[int], bytes | None]


class BroadcastDestroyedError(DStreamStateError):
    """A destroyed broadcast was read, or shipped in a task."""


SERVICE_NAME = "broadcasts"


class BroadcastRegistry:
    """Pickled broadcast values by id, with this executor's unpickled copies cached.

    One per executor environment (`registry_of`). Thread-safe. ``fetcher`` is asked for the bytes
    of an id this executor never received.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pickled: dict[int, bytes] = {}
        self._loaded: dict[int, Any] = {}
        self._destroyed: set[int] = set()
        self._fetcher: Fetcher | None = None

    def set_fetcher(self, fetcher: Fetcher | None) -> None:
        """Install how a worker process gets the bytes of a broadcast it does not hold."""
        self._fetcher = fetcher

    def publish(self, bid: int, data: bytes) -> None:
        with self._lock:
            self._pickled[bid] = data

    def load(self, bid: int) -> Any:
        """The value of broadcast ``bid`` in this process.

        Raises:
            DStreamStateError: the broadcast was destroyed, or is unknown here (e.g. it was
                pickled by another driver, as in a checkpoint, and not re-created).
        """
        with self._lock:
            if bid in self._loaded:
                return self._loaded[bid]
            data = self._pickled.get(bid)
        if data is None:
            self._check_not_destroyed(bid)
            data = self._fetcher(bid) if self._fetcher is not None else None
            if data is None:
                raise DStreamStateError(
                    f"broadcast {bid} is not available on this executor: it was created by another"
                    " Context (a checkpoint does not keep broadcasts; re-create them after recovery)"
                )
        value = pickle.loads(data)
        with self._lock:
            self._check_not_destroyed(bid)
            return self._loaded.setdefault(bid, value)

    def close(self) -> None:
        """Drop every broadcast (the executor environment is closing)."""
        with self._lock:
            self._pickled.clear()
            self._loaded.clear()

    def forget(self, bid: int) -> None:
        """Drop the bytes and the copy of a broadcast nothing can use any more (its driver object died)."""
        with self._lock:
            self._pickled.pop(bid, None)
            self._loaded.pop(bid, None)

    def unpersist(self, bid: int) -> None:
        """Drop this process's unpickled copy; the bytes stay, the next use reloads them."""
        with self._lock:
            self._loaded.pop(bid, None)

    def destroy(self, bid: int) -> None:
        """Forget the broadcast; later loads raise."""
        with self._lock:
            self._pickled.pop(bid, None)
            self._loaded.pop(bid, None)
            self._destroyed.add(bid)

    def _check_not_destroyed(self, bid: int) -> None:
        if bid in self._destroyed:
            raise BroadcastDestroyedError(f"Attempted to use broadcast {bid} after it was destroyed")


def registry_of(env: ExecutorEnv) -> BroadcastRegistry:
    """The broadcast registry of an executor environment (created on first use)."""
    return env.service(SERVICE_NAME, BroadcastRegistry)


class Broadcast(Generic[T]):
    """A read-only value created with `Context.broadcast`; tasks read it with ``value``."""

    def __init__(self, bid: int, value: Any = _UNRESOLVED, registry: BroadcastRegistry | None = None) -> None:
        self._id = bid
        self._value = value
        self._registry = registry  # the driver's; None for a handle unpickled in a task
        self._destroyed = False

    @classmethod
    def _create(cls, value: T, registry: BroadcastRegistry) -> Broadcast[T]:
        """The driver side: pickle ``value`` now (an unpicklable value fails here, not in a task)."""
        try:
            data: bytes = cloudpickle.dumps(value, protocol=PICKLE_PROTOCOL)
        except Exception as exc:
            raise TypeError(
                f"cannot broadcast {value!r}: it is not picklable ({type(exc).__name__}: {exc})"
            ) from exc
        broadcast: Broadcast[T] = cls(next(_ids), value, registry)
        registry.publish(broadcast._id, data)
        weakref.finalize(broadcast, registry.forget, broadcast._id)
        return broadcast

    @property
    def id(self) -> int:
        """The broadcast's id (what a task carries)."""
        return self._id

    @property
    def value(self) -> T:
        """The broadcast value (loaded once per worker process)."""
        self._check_usable()
        if self._value is _UNRESOLVED:
            self._value = self._where().load(self._id)
        value: T = self._value
        return value

    def unpersist(self, blocking: bool = False) -> None:
        """Drop the workers' copies; the value is sent again if a later task uses it."""
        self._check_usable()
        self._where().unpersist(self._id)

    def destroy(self, blocking: bool = False) -> None:
        """Drop the value everywhere; using this broadcast afterwards raises."""
        self._destroyed = True
        self._where().destroy(self._id)

    def __reduce__(self) -> tuple[Any, ...]:
        self._check_usable()
        return (_broadcast_in_task, (self._id,))

    def __repr__(self) -> str:
        return f"Broadcast(id={self._id})"

    def _where(self) -> BroadcastRegistry:
        """The driver's registry, or inside a task the registry of the executor it runs on."""
        if self._registry is not None:
            return self._registry
        try:
            return registry_of(current_executor_env())
        except DStreamStateError:
            raise DStreamStateError(
                f"broadcast {self._id} was unpickled outside a task and outside its driver: its value"
                " can only be read in a task or through the Broadcast that Context.broadcast returned"
            ) from None

    def _check_usable(self) -> None:
        if self._destroyed:
            raise BroadcastDestroyedError(f"Attempted to use broadcast {self._id} after it was destroyed")


def _broadcast_in_task(bid: int) -> Broadcast[Any]:
    """Unpickling: a handle that resolves its value from its executor's registry when read."""
    return Broadcast(bid)
