"""The driver children of a run: spawn, signal, watch their telemetry, stop, reap.

Each driver is `python -m chaos.driver_process RUN_DIR INDEX` in its own session (so a Ctrl-C in the
runner's terminal reaches the runner only, which then reaps every child in its `finally`), with its
stdin a pipe (closing it stops the driver gracefully; a runner that dies closes it too) and its stdout
a pipe of telemetry lines read by one thread per driver into `Drivers.events`. Its stderr goes to
`RUN_DIR/driver-INDEX.log`.

Every wait here has a timeout; `reap_all` kills (SIGKILL) and waits for every child still alive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.errors import ChaosError
from chaos.telemetry import decode_line
from wal.crashpoints import ENV_VAR as CRASH_POINT_ENV

Event = dict[str, Any]
EXIT_WAIT_S = 30.0


@dataclass
class Driver:
    """One driver child."""

    index: int
    proc: subprocess.Popen[str]
    crash_point: str | None
    reader: threading.Thread | None = None
    started: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def name(self) -> str:
        return f"driver-{self.index}"

    def alive(self) -> bool:
        return self.proc.poll() is None


class Drivers:
    """Spawns and tracks a run's driver children; `current` is the one the run relies on."""

    def __init__(self, run_dir: Path, on_event: Callable[[Event], None] | None = None) -> None:
        self.run_dir = run_dir
        self.events: list[Event] = []
        self.current: Driver | None = None
        self._all: list[Driver] = []
        self._cond = threading.Condition()
        self._on_event = on_event

    # -- spawning ------------------------------------------------------------------------------

    def spawn(self, *, crash_point: str | None = None, extra_env: dict[str, str] | None = None) -> Driver:
        """Start driver number len(spawned) (not made `current`; see `start`)."""
        env = {k: v for k, v in os.environ.items() if k != CRASH_POINT_ENV}
        env.update(extra_env or {})
        if crash_point:
            env[CRASH_POINT_ENV] = crash_point
        index = len(self._all)
        with (self.run_dir / f"driver-{index}.log").open("w") as log:  # the child keeps its own fd
            proc = subprocess.Popen(
                [sys.executable, "-m", "chaos.driver_process", str(self.run_dir), str(index)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                env=env, start_new_session=True,
            )  # fmt: skip
        driver = Driver(index, proc, crash_point)
        driver.reader = threading.Thread(target=self._read, args=(driver,), daemon=True)
        with self._cond:
            self._all.append(driver)
        driver.reader.start()
        return driver

    def start(self, *, crash_point: str | None = None, timeout_s: float = 60.0) -> Driver:
        """Spawn a driver, make it current and wait until it started (or died, or the timeout)."""
        driver = self.spawn(crash_point=crash_point)
        self.current = driver
        self.wait_started(driver, timeout_s)
        return driver

    def _read(self, driver: Driver) -> None:
        assert driver.proc.stdout is not None
        with driver.proc.stdout:
            for line in driver.proc.stdout:
                event = decode_line(line)
                if event is None:
                    continue
                with self._cond:
                    self.events.append(event)
                    if event.get("f") == "driver-started":
                        driver.started.set()
                    self._cond.notify_all()
                if self._on_event is not None:
                    self._on_event(event)
        with self._cond:
            self._cond.notify_all()  # EOF: the driver died or stopped

    # -- waiting -------------------------------------------------------------------------------

    def wait_started(self, driver: Driver, timeout_s: float) -> bool:
        """Wait until `driver` reported "driver-started"; False if it died first or the timeout passed."""
        return self.wait_for(lambda _: driver.started.is_set() or not driver.alive(), timeout_s) and (
            driver.started.is_set()
        )

    def mark(self) -> int:
        """A position in `events`, to wait for events after it."""
        with self._cond:
            return len(self.events)

    def wait_event(self, driver: Driver, f: str, after: int, timeout_s: float) -> Event | None:
        """The first event `f` of `driver` after position `after`; None if it died first or timed out."""
        found: list[Event] = []

        def seen(events: list[Event]) -> bool:
            found[:] = [e for e in events[after:] if e.get("f") == f and e.get("proc") == driver.name]
            return bool(found) or not driver.alive()

        self.wait_for(seen, timeout_s)
        return found[0] if found else None

    def last(self, predicate: Callable[[Event], bool]) -> Event | None:
        """The newest event (of any driver) for which `predicate` holds, or None."""
        with self._cond:
            return next((e for e in reversed(self.events) if predicate(e)), None)

    def wait_for(self, predicate: Callable[[list[Event]], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self.events):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))  # re-check liveness, which signals no condition
            return True

    def wait_exit(self, driver: Driver, timeout_s: float) -> int | None:
        """The driver's exit status, or None if it is still running after `timeout_s`."""
        try:
            return driver.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    # -- signals -------------------------------------------------------------------------------

    def signal(self, driver: Driver, signum: int) -> bool:
        """Send `signum` to the driver if it is alive; whether it was sent."""
        if not driver.alive():
            return False
        try:
            os.kill(driver.pid, signum)
        except ProcessLookupError:
            return False
        return True

    def kill(self, driver: Driver) -> None:
        """SIGKILL the driver (and SIGCONT it, in case it was paused) and reap it."""
        self.signal(driver, signal.SIGKILL)
        self.signal(driver, signal.SIGCONT)
        if self.wait_exit(driver, EXIT_WAIT_S) is None:
            raise ChaosError(f"{driver.name} (pid {driver.pid}) survived SIGKILL for {EXIT_WAIT_S} s")

    def stop(self, driver: Driver, timeout_s: float) -> int | None:
        """Stop gracefully (close stdin); SIGKILL after `timeout_s`. Returns the graceful exit status."""
        self.signal(driver, signal.SIGCONT)
        try:
            if driver.proc.stdin is not None:
                driver.proc.stdin.close()
        except OSError:
            pass
        code = self.wait_exit(driver, timeout_s)
        if code is None:
            self.kill(driver)
        return code

    def reap_all(self) -> None:
        """SIGKILL and wait for every child still alive, and join the readers (idempotent)."""
        for driver in list(self._all):
            if driver.alive():
                self.kill(driver)
            if driver.proc.stdin is not None and not driver.proc.stdin.closed:
                try:
                    driver.proc.stdin.close()
                except OSError:
                    pass
            if driver.reader is not None:
                driver.reader.join(EXIT_WAIT_S)

    def part_files(self) -> list[Path]:
        """The history parts the drivers wrote."""
        return [p for d in self._all if (p := self.run_dir / f"{d.name}.jsonl").exists()]
