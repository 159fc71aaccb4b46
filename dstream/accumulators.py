"""Accumulators (PySpark's ``pyspark.Accumulator``): values tasks add to and only the driver reads.

How updates travel. An accumulator pickles as its id, its param and the param's zero value, never as
its value. Unpickling it inside a task (`StageTask.run` opens a `collecting_updates` scope around
loading the stage) makes a task-side copy that starts at zero and is registered in that scope; the
task adds to the copy, and its total goes back to the driver inside the task's result
(`TaskResult.accumulator_updates`), where the DAG scheduler merges it into the driver's accumulator
with `addInPlace`. This is Spark's protocol: it needs no shared memory, so it works the same on the
local thread pool (where every task is pickled too) and on a backend whose workers are other
processes.

Guarantees, as in Spark: an update is merged once per successful task run. A task that fails sends
nothing, but a job, a batch or a shuffle stage that runs again after a failure or a driver restart
adds again, so accumulators are at-least-once across re-run batches; only exactly-once sinks
(dstream.sinks) give exactly-once results. Accumulators are not saved in checkpoints: after recovery
re-create them (the streaming guide's lazily created singletons).

Reading ``value`` inside a task raises, as in PySpark: a task only sees its own partial sum.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from dstream.errors import DStreamStateError

T = TypeVar("T")

_ids = itertools.count()
_task_scope = threading.local()


class AccumulatorParam(Generic[T]):
    """How to accumulate values of one type: a zero and an associative, commutative add."""

    def zero(self, value: T) -> T:
        """A zero compatible in shape with ``value`` (e.g. a zero vector of its length)."""
        raise NotImplementedError

    def addInPlace(self, value1: T, value2: T) -> T:
        """``value1 + value2``; may update ``value1`` in place and return it."""
        raise NotImplementedError


class AddingAccumulatorParam(AccumulatorParam[T]):
    """The param of numbers: zero is a fixed value, add is ``+=``."""

    def __init__(self, zero_value: T) -> None:
        self.zero_value = zero_value

    def zero(self, value: T) -> T:
        return self.zero_value

    def addInPlace(self, value1: T, value2: T) -> T:
        value1 += value2  # type: ignore[operator]
        return value1


INT_ACCUMULATOR_PARAM: AddingAccumulatorParam[int] = AddingAccumulatorParam(0)
FLOAT_ACCUMULATOR_PARAM: AddingAccumulatorParam[float] = AddingAccumulatorParam(0.0)
COMPLEX_ACCUMULATOR_PARAM: AddingAccumulatorParam[complex] = AddingAccumulatorParam(0.0j)


def default_param(value: Any) -> AccumulatorParam[Any]:
    """PySpark's default param for ``value``'s type: int, float or complex.

    Raises:
        TypeError: no default param for that type; pass ``accum_param``.
    """
    for kind, param in (
        (int, INT_ACCUMULATOR_PARAM),
        (float, FLOAT_ACCUMULATOR_PARAM),
        (complex, COMPLEX_ACCUMULATOR_PARAM),
    ):
        if isinstance(value, kind):
            return param
    raise TypeError(f"No default accumulator param for type {type(value)}; pass accum_param")


class Accumulator(Generic[T]):
    """A value tasks add to (``+=`` or ``add``) and the driver reads (``value``)."""

    def __init__(self, aid: int, value: T, accum_param: AccumulatorParam[T]) -> None:
        self.aid = aid
        self.accum_param = accum_param
        self._value = value
        self._deserialized = False
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        param = self.accum_param
        return (_accumulator_in_task, (self.aid, param.zero(self._value), param))

    @property
    def value(self) -> T:
        """The accumulated value; only on the driver."""
        self._check_on_driver()
        return self._value

    @value.setter
    def value(self, value: T) -> None:
        self._check_on_driver()
        with self._lock:
            self._value = value

    def add(self, term: T) -> None:
        """Add ``term`` with the param's ``addInPlace``."""
        with self._lock:
            self._value = self.accum_param.addInPlace(self._value, term)

    def __iadd__(self, term: T) -> Accumulator[T]:
        self.add(term)
        return self

    def __str__(self) -> str:
        return str(self._value)

    def __repr__(self) -> str:
        return f"Accumulator<id={self.aid}, value={self._value}>"

    def _check_on_driver(self) -> None:
        if self._deserialized:
            raise DStreamStateError(
                f"Accumulator.value of accumulator {self.aid} cannot be accessed inside tasks: a task"
                " only holds its own partial sum; read it on the driver after the job (an accumulator"
                " restored from a checkpoint is detached too: re-create it after recovery)"
            )


class AccumulatorRegistry:
    """The driver's accumulators by id (weakly held), where task updates are merged."""

    def __init__(self) -> None:
        self._by_id: weakref.WeakValueDictionary[int, Accumulator[Any]] = weakref.WeakValueDictionary()

    def create(self, value: T, accum_param: AccumulatorParam[T]) -> Accumulator[T]:
        """A new driver-side accumulator starting at ``value``."""
        acc = Accumulator(next(_ids), value, accum_param)
        self._by_id[acc.aid] = acc
        return acc

    def merge(self, updates: dict[int, Any]) -> None:
        """Add one task's partial sums into the driver's accumulators (gone ones are skipped)."""
        for aid, partial in updates.items():
            acc = self._by_id.get(aid)
            if acc is not None:
                acc.add(partial)


def _accumulator_in_task(aid: int, zero: T, accum_param: AccumulatorParam[T]) -> Accumulator[T]:
    """Unpickling: the task-side copy, starting at zero, registered in the running task's scope."""
    scope: dict[int, Accumulator[Any]] | None = getattr(_task_scope, "updates", None)
    if scope is not None and aid in scope:
        return scope[aid]
    acc = Accumulator(aid, zero, accum_param)
    acc._deserialized = True
    if scope is not None:
        scope[aid] = acc
    return acc


@contextmanager
def collecting_updates() -> Iterator[dict[int, Any]]:
    """Scope of one task: yields a dict that, on exit, maps accumulator id to the task's partial sum.

    Accumulators unpickled inside the scope (in this thread) are the ones whose updates count;
    an accumulator unpickled elsewhere (e.g. from a checkpoint) is detached and its adds are lost.
    """
    previous = getattr(_task_scope, "updates", None)
    scope: dict[int, Accumulator[Any]] = {}
    result: dict[int, Any] = {}
    _task_scope.updates = scope
    try:
        yield result
    finally:
        _task_scope.updates = previous
        result.update({aid: acc._value for aid, acc in scope.items()})
