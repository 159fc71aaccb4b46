"""Task-side helpers for the worker-loss tests: a record that stalls the task holding it, once.

Module-level so that tasks pickle them by reference and the Dask workers import them from here. The
first attempt to process the trigger record writes its worker's pid to ``<dir>/started`` and waits
(bounded) for ``<dir>/released``; the test SIGKILLs or SIGSTOPs that pid meanwhile. Any later attempt
(the re-run of the lost task) finds ``started`` and goes straight on. The stalled attempt, once
released, writes ``<dir>/finished-<pid>``: a paused worker that resumed really finished its task late.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

STALL_MAX_S = 120.0


def stall_once(x: Any, trigger: Any, marker_dir: str) -> Any:
    if x != trigger:
        return x
    started = Path(marker_dir, "started")
    tmp = Path(marker_dir, f".started-{os.getpid()}")
    tmp.write_text(str(os.getpid()))
    try:
        os.link(tmp, started)  # exactly one attempt wins; the pid is complete when the name appears
    except FileExistsError:
        return x
    finally:
        tmp.unlink()
    released = Path(marker_dir, "released")
    deadline = time.monotonic() + STALL_MAX_S
    while not released.exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # another process's file: no event to wait on across processes
    Path(marker_dir, f"finished-{os.getpid()}").touch()  # the stalled attempt went on (maybe late)
    return x


def wait_for_stalled_pid(marker_dir: str, timeout_s: float) -> int:
    """The pid of the worker stalling on the trigger record (waits for it, bounded)."""
    started = Path(marker_dir, "started")
    deadline = time.monotonic() + timeout_s
    while not started.exists():
        assert time.monotonic() < deadline, "no task reached the trigger record"
        time.sleep(0.02)
    return int(started.read_text())


def wait_for_finished(marker_dir: str, pid: int, timeout_s: float) -> None:
    """Wait (bounded) until the stalled attempt in process `pid` has gone on past its stall."""
    finished = Path(marker_dir, f"finished-{pid}")
    deadline = time.monotonic() + timeout_s
    while not finished.exists():
        assert time.monotonic() < deadline, f"the stalled attempt in process {pid} never went on"
        time.sleep(0.02)


def release(marker_dir: str) -> None:
    Path(marker_dir, "released").touch()
