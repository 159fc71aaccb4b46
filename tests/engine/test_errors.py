"""Failures inside tasks, unserializable closures, and actions on empty RDDs."""

from __future__ import annotations

import threading

import pytest

from dstream import Context
from dstream.backends import TaskNotSerializableError
from dstream.errors import JobFailedError


class CustomError(Exception):
    pass


def test_task_error_keeps_type_and_message_as_cause(sc: Context) -> None:
    def explode(x: int) -> int:
        if x == 3:
            raise CustomError(f"bad record {x}")
        return x

    with pytest.raises(JobFailedError, match="bad record 3") as info:
        sc.parallelize(range(6), 3).map(explode).collect()
    cause = info.value.__cause__
    assert isinstance(cause, CustomError)
    assert str(cause) == "bad record 3"
    assert any("explode" in note for note in getattr(cause, "__notes__", [])), "worker traceback is kept"


def test_error_in_shuffle_map_stage_propagates(sc: Context) -> None:
    pairs = sc.parallelize([(1, 1), (1, 0)], 2)
    with pytest.raises(JobFailedError, match="by zero") as info:
        pairs.mapValues(lambda v: 1 // v).reduceByKey(lambda a, b: a + b).collect()
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_error_in_reduce_function_propagates(sc: Context) -> None:
    def bad_merge(a: int, b: int) -> int:
        raise KeyError("merge failed")

    with pytest.raises(JobFailedError, match="merge failed"):
        sc.parallelize([("k", 1), ("k", 2)], 1).reduceByKey(bad_merge).collect()


def test_unpicklable_exception_still_reports_its_message(sc: Context) -> None:
    class Unpicklable(Exception):
        def __init__(self, lock: threading.Lock, text: str) -> None:
            super().__init__(text)
            self.lock = lock

    def fail(_: int) -> int:
        raise Unpicklable(threading.Lock(), "with a lock inside")

    with pytest.raises(JobFailedError, match="with a lock inside"):
        sc.parallelize([1]).map(fail).collect()


def test_closure_capturing_a_lock_fails_with_a_clear_error(sc: Context) -> None:
    lock = threading.Lock()

    def guarded(x: int) -> int:
        with lock:
            return x

    with pytest.raises(TaskNotSerializableError, match=r"not serializable.*lock") as info:
        sc.parallelize([1, 2]).map(guarded).collect()
    assert isinstance(info.value, TypeError)


def test_records_that_cannot_be_pickled_fail_clearly(sc: Context) -> None:
    with pytest.raises(TypeError, match="lock"):
        sc.parallelize([threading.Lock()], 1).count()


def test_empty_rdd_reduce_first_and_friends(sc: Context) -> None:
    empty = sc.parallelize([], 3)
    with pytest.raises(ValueError, match=r"Can not reduce\(\) empty RDD"):
        empty.reduce(lambda a, b: a + b)
    with pytest.raises(ValueError, match="RDD is empty"):
        empty.first()
    with pytest.raises(ValueError, match="RDD is empty"):
        sc.emptyRDD().first()
    assert empty.isEmpty() and sc.emptyRDD().isEmpty()
    assert not sc.parallelize([0]).isEmpty()
    assert empty.fold(0, lambda a, b: a + b) == 0
    assert empty.sum() == 0


def test_not_pairs_in_a_shuffle_is_reported(sc: Context) -> None:
    with pytest.raises(JobFailedError, match=r"\(key, value\) pairs"):
        sc.parallelize([1, 2, 3]).reduceByKey(lambda a, b: a + b).collect()
