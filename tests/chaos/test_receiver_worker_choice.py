"""The receiver-worker-kill nemesis and the producers' resolvers, against telemetry written by hand.

The "workers" and the driver are stand-in child processes (sleeping Pythons), so the nemesis' SIGKILL
is real and its victim is checked exactly; the driver's telemetry is appended to `Drivers.events` as
a driver child would report it. No engine runs here (the engine's side is
tests/chaos/test_receiver_worker_kill.py).
"""

from __future__ import annotations

import copy
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.nemesis.drivers import Driver, Drivers
from chaos.nemesis.inject import Nemesis
from chaos.nemesis.schedule import Step
from chaos.runner import receiver_resolver

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
WORKER_1, WORKER_2 = "tcp://127.0.0.1:40001", "tcp://127.0.0.1:40002"


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Three sleeping children (a driver and two workers), killed and reaped at the end."""
    procs = [subprocess.Popen(SLEEPER) for _ in range(3)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(30)


def cluster_reports(worker_pids: dict[str, int]) -> list[dict[str, Any]]:
    """What a join driver on two workers reports: its workers, its receivers' addresses, and where
    each receiver started (stream 2 on the first worker, stream 0 on the second)."""
    return [
        {"proc": "driver-0", "f": "workers", "pids": worker_pids},
        {"proc": "driver-0", "f": "receivers", "addresses": {"a": ["127.0.0.1", 7001], "b": None}},
        {
            "proc": "driver-0",
            "f": "receivers",
            "addresses": {"a": ["127.0.0.1", 7001], "b": ["127.0.0.1", 7002]},
        },
        {"proc": "driver-0", "f": "receiver-started", "stream": 2, "location": WORKER_1},
        {"proc": "driver-0", "f": "receiver-started", "stream": 0, "location": WORKER_2},
    ]


def nemesis_on(tmp_path: Path, driver_proc: subprocess.Popen[bytes]) -> tuple[Nemesis, list[Any]]:
    drivers = Drivers(tmp_path)
    drivers.current = Driver(0, driver_proc, None)  # type: ignore[arg-type]  # no pipes: not read here
    recorded: list[Any] = []
    nemesis = Nemesis(
        drivers,
        lambda *a, **kw: recorded.append(copy.deepcopy((a, kw))),
        random.Random(0),
        start_timeout_s=0.5,
    )
    return nemesis, recorded


def test_the_step_picks_the_receiver_by_stream_order_and_kills_only_its_worker(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    driver, worker_1, worker_2 = sleepers
    nemesis, recorded = nemesis_on(tmp_path, driver)
    nemesis.drivers.events += cluster_reports({WORKER_1: worker_1.pid, WORKER_2: worker_2.pid})
    detail = nemesis.inject(Step("receiver-worker-kill", 0.0, {"receiver": 3}))  # 3 % 2: streams[1] = 2
    assert (detail["stream"], detail["address"], detail["worker_pid"]) == (2, WORKER_1, worker_1.pid)
    assert detail["killed"] is True
    assert worker_1.wait(30) == -signal.SIGKILL
    assert worker_2.poll() is None and driver.poll() is None
    # No driver reported the receiver started again (nothing runs it here): the bounded wait ended.
    assert detail["receiver_restarted"] is False and detail["moved_to"] is None
    starts = [kw for a, kw in recorded if a[:2] == ("nemesis", "fault-start")]
    assert starts == [
        {
            "fault": "receiver-worker-kill",
            "target": f"worker {WORKER_1} (receiver 2)",
            "pid": worker_1.pid,
            "detail": {"receiver": 3, "stream": 2, "address": WORKER_1, "worker_pid": worker_1.pid},
        }
    ]


def test_a_receiver_on_the_driver_is_not_killed_and_the_fault_is_recorded_as_skipped(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    driver = sleepers[0]
    nemesis, _ = nemesis_on(tmp_path, driver)
    nemesis.drivers.events += [
        {"proc": "driver-0", "f": "receivers", "addresses": {"a": ["127.0.0.1", 7001]}},
        {"proc": "driver-0", "f": "receiver-started", "stream": 0, "location": "driver"},
    ]
    detail = nemesis.inject(Step("receiver-worker-kill", 0.0, {"receiver": 0}))
    assert detail == {"receiver": 0, "skipped": "the driver reported no receiver running on a worker"}
    assert all(p.poll() is None for p in sleepers)


def test_producers_resolve_a_receiver_to_its_newest_reported_address(tmp_path: Path) -> None:
    drivers = Drivers(tmp_path)
    resolve_a = receiver_resolver(drivers, "a", 7001)
    resolve_b = receiver_resolver(drivers, "b", 7002)
    assert (resolve_a(), resolve_b()) == (("127.0.0.1", 7001), ("127.0.0.1", 7002))  # nothing reported
    drivers.events += [
        {"proc": "driver-0", "f": "receivers", "addresses": {"a": ["127.0.0.1", 7001], "b": None}},
        {"proc": "driver-0", "f": "receivers", "addresses": {"a": ["10.0.0.7", 7101], "b": None}},
    ]
    assert (resolve_a(), resolve_b()) == (("10.0.0.7", 7101), ("127.0.0.1", 7002))
    # A replacement driver reports the receiver moving (not placed): the newest known address stays.
    drivers.events.append({"proc": "driver-1", "f": "receivers", "addresses": {"a": None, "b": None}})
    assert resolve_a() == ("10.0.0.7", 7101)
    drivers.events.append({"proc": "driver-1", "f": "receivers", "addresses": {"a": ["10.0.0.8", 7201]}})
    assert resolve_a() == ("10.0.0.8", 7201)
