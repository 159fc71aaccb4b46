"""The Dask backend's resubmission of lost tasks, against a fake client that loses chosen attempts.

Killing a worker more often than Dask's own `allowed-failures` (3) in a real cluster takes many
seconds; this fake runs the tasks in process and fails chosen attempts with ``KilledWorker``, so the
backend's loop (what it submits again, what it gives up on, what it returns) is tested exactly.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Any

import pytest
from distributed.scheduler import KilledWorker

from dstream.backends.dask.backend import DaskBackend
from dstream.backends.dask.cluster import ClusterHandle
from dstream.backends.dask.retries import TaskLostError
from dstream.backends.executor_env import ExecutorEnv, running_in
from dstream.backends.local import run_serialized
from dstream.config import DaskConfig
from dstream.master import parse_master


@dataclass
class DeadWorker:
    address: str = "tcp://127.0.0.1:9"


@dataclass
class FakeFuture:
    status: str
    value: Any = None
    error: BaseException | None = None

    def exception(self) -> BaseException | None:
        return self.error

    def release(self) -> None:
        pass


class LosingClient:
    """Runs tasks in process; attempt k of task i is lost when (i, k) is in `losses`."""

    def __init__(self, losses: set[tuple[int, int]]) -> None:
        self.losses = losses
        self.attempts: dict[int, int] = {}
        self.env = ExecutorEnv("fake-worker")
        self.closed = False

    def register_plugin(self, plugin: Any, name: str) -> None:
        pass

    def nthreads(self) -> dict[str, int]:
        return {"fake": 2}

    def subscribe_topic(self, topic: str, handler: Any) -> None:
        pass

    def unsubscribe_topic(self, topic: str) -> None:
        pass

    def sync(self, func: Any, *args: Any, callback_timeout: float | None = None, **kwargs: Any) -> Any:
        result = func(*args, **kwargs)
        return asyncio.run(result) if inspect.iscoroutine(result) else result

    @property
    def scheduler(self) -> Any:
        return self

    def identity(self, n_workers: int) -> dict[str, Any]:
        return {"workers": {}}  # no worker for the driver's block calls: tasks run in process

    def set_metadata(self, key: Any, value: Any) -> None:
        pass

    def scatter(self, args: list[Any], hash: bool) -> list[Any]:
        return args

    def map(self, func: Any, names: list[str], payloads: list[Any], key: list[str], pure: bool) -> list[Any]:
        futures = []
        for k, payload in zip(key, payloads, strict=True):
            index = int(k.rsplit("-", 1)[1])
            attempt = self.attempts.get(index, 0)
            self.attempts[index] = attempt + 1
            if (index, attempt) in self.losses:
                futures.append(FakeFuture("error", error=KilledWorker(k, DeadWorker(), 3)))
            else:
                with running_in(self.env):
                    futures.append(FakeFuture("finished", run_serialized(payload)))
        return futures

    def gather(self, futures: dict[int, FakeFuture], errors: str) -> dict[int, Any]:
        return {i: f.value if f.status == "finished" else None for i, f in futures.items()}

    def close(self) -> None:
        self.closed = True


@dataclass
class Square:
    x: int

    def run(self) -> int:
        return self.x * self.x

    def describe(self) -> str:
        return f"task {self.x} of stage 0 (square)"


def backend(client: LosingClient, retries_max: int) -> DaskBackend:
    config = DaskConfig(task_retries_max=retries_max)
    return DaskBackend(ClusterHandle(client, None), parse_master("dask://127.0.0.1:9"), config)


def test_lost_tasks_are_submitted_again_and_results_keep_their_order() -> None:
    client = LosingClient({(1, 0), (1, 1), (3, 0), (1, 2)})  # task 1 lost three times: Dask gave up
    b = backend(client, retries_max=4)
    assert b.run_tasks([Square(i) for i in range(5)]) == [0, 1, 4, 9, 16]
    assert client.attempts == {0: 1, 1: 4, 2: 1, 3: 2, 4: 1}  # only the lost ones ran again
    b.stop()
    assert client.closed


def test_a_task_lost_on_every_allowed_attempt_fails_the_job_naming_it() -> None:
    client = LosingClient({(2, k) for k in range(10)})
    b = backend(client, retries_max=2)
    with pytest.raises(TaskLostError, match=r"task 2 of stage 0 \(square\).*3 attempts.*KilledWorker"):
        b.run_tasks([Square(i) for i in range(4)])
    assert client.attempts[2] == 3 and client.attempts[0] == 1
    b.stop()
