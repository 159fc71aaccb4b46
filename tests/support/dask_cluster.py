"""One Dask cluster for a whole test session, and how a test's Context joins it.

Starting a `LocalCluster` costs about a second, so the operator and streaming tests that run on the Dask
backend share one cluster of two worker processes (the ``dask_master`` fixture in tests/conftest.py)
and each test's Context joins it as ``dask://`` (`dask_conf` declares the test's local temporary
directories reachable by the workers, which they are: same machine). Tests of the embedded
``local-cluster[N]`` lifecycle start their own.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable

from distributed import LocalCluster

from dstream.context import Conf

WORKERS = 2
PROCESS_EXIT_WAIT_S = 30.0


def start_session_cluster() -> LocalCluster:
    return LocalCluster(
        n_workers=WORKERS,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
    )


def dask_conf(conf: Conf | None = None) -> Conf:
    """`conf` (or a new one) with the local disk declared reachable by the session cluster's workers."""
    return (conf or Conf()).set("dstream.dask.sharedFilesystem", "true")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def wait_gone(pids: Iterable[int], timeout_s: float = PROCESS_EXIT_WAIT_S) -> list[int]:
    """Wait (bounded) for every process to end; returns those still alive."""
    deadline = time.monotonic() + timeout_s
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)  # polling another process's existence: there is no event to wait on
        left = [p for p in left if alive(p)]
    return left


def kill_all(pids: Iterable[int]) -> None:
    """SIGKILL what a failed test left behind (never leave a worker running)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
