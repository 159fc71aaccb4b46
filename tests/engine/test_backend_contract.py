"""The ExecutionBackend contract, run against every backend (the Dask one joins the session's cluster)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dstream.backends import ExecutionBackend, LocalBackend, TaskNotSerializableError, create_backend
from dstream.config import DaskConfig, EngineConfig
from dstream.master import parse_master

BACKENDS: dict[str, Callable[[], ExecutionBackend]] = {
    "local-2-threads": lambda: LocalBackend(2),
    "local-inline": lambda: LocalBackend(1, inline=True),
}


@pytest.fixture(params=[*sorted(BACKENDS), pytest.param("dask", marks=pytest.mark.dask)])
def backend(request: pytest.FixtureRequest) -> Iterator[ExecutionBackend]:
    if request.param == "dask":
        config = EngineConfig(dask=DaskConfig(shared_filesystem=True))
        b = create_backend(parse_master(request.getfixturevalue("dask_master")), config)
    else:
        b = BACKENDS[request.param]()
    yield b
    b.stop()


@dataclass
class Square:
    x: int

    def run(self) -> int:
        return self.x * self.x

    def describe(self) -> str:
        return f"square {self.x}"


@dataclass
class Fail:
    message: str

    def run(self) -> Any:
        raise LookupError(self.message)

    def describe(self) -> str:
        return "fail"


@dataclass
class Holds:
    thing: Any

    def run(self) -> None:
        return None

    def describe(self) -> str:
        return "holds an unpicklable thing"


@dataclass
class Identity:
    """Returns what it was given: proves the task crossed a pickle boundary (a copy comes back)."""

    payload: list[int]

    def run(self) -> list[int]:
        return self.payload

    def describe(self) -> str:
        return "identity"


def test_results_come_back_in_task_order(backend: ExecutionBackend) -> None:
    assert backend.run_tasks([Square(i) for i in range(20)]) == [i * i for i in range(20)]
    assert backend.run_tasks([]) == []


def test_task_error_is_raised_with_type_message_and_remote_traceback(backend: ExecutionBackend) -> None:
    with pytest.raises(LookupError, match="no such key") as info:
        backend.run_tasks([Square(1), Fail("no such key"), Square(2)])
    assert any("Task traceback" in note for note in getattr(info.value, "__notes__", []))


def test_unpicklable_task_is_refused_before_running(backend: ExecutionBackend) -> None:
    with pytest.raises(TaskNotSerializableError, match=r"holds an unpicklable thing.*lock"):
        backend.run_tasks([Holds(threading.Lock())])


def test_tasks_and_results_are_serialized(backend: ExecutionBackend) -> None:
    payload = [1, 2, 3]
    (result,) = backend.run_tasks([Identity(payload)])  # type: ignore[list-item]
    assert result == payload and result is not payload


def test_default_parallelism_and_idempotent_stop(backend: ExecutionBackend) -> None:
    assert backend.default_parallelism >= 1
    backend.stop()
    backend.stop()
