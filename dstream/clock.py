"""Injected time. Everything time-driven takes a Clock; tests advance a ManualClock instead of sleeping.

Times are integer milliseconds since the epoch (docs/architecture.md section 3).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod


class Clock(ABC):
    """A source of time in milliseconds that can also wait until a target time."""

    @abstractmethod
    def time_ms(self) -> int:
        """Current time in milliseconds."""

    @abstractmethod
    def wait_until(self, target_ms: int, stop: threading.Event | None = None) -> int:
        """Block until time_ms() >= target_ms or `stop` is set; return the time then."""


class SystemClock(Clock):
    """Wall-clock time."""

    def time_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def wait_until(self, target_ms: int, stop: threading.Event | None = None) -> int:
        stop = stop or threading.Event()
        while True:
            now = self.time_ms()
            if now >= target_ms or stop.is_set():
                return now
            stop.wait(min((target_ms - now) / 1000.0, 0.1))


class ManualClock(Clock):
    """A clock that moves only when told to; waiters wake as it passes their target."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now_ms = int(start_ms)
        self._cond = threading.Condition()

    def time_ms(self) -> int:
        with self._cond:
            return self._now_ms

    def set_time(self, time_ms: int) -> None:
        """Jump to `time_ms` (never backwards) and wake every waiter."""
        with self._cond:
            if time_ms < self._now_ms:
                raise ValueError(f"ManualClock cannot go back from {self._now_ms} to {time_ms}")
            self._now_ms = int(time_ms)
            self._cond.notify_all()

    def advance(self, delta_ms: int) -> None:
        """Move forward by `delta_ms` milliseconds."""
        if delta_ms < 0:
            raise ValueError(f"ManualClock.advance needs delta_ms >= 0, got {delta_ms}")
        with self._cond:
            self._now_ms += int(delta_ms)
            self._cond.notify_all()

    def wait_until(self, target_ms: int, stop: threading.Event | None = None) -> int:
        with self._cond:
            while self._now_ms < target_ms and not (stop is not None and stop.is_set()):
                # Bounded wait so a set `stop` is noticed; the clock itself never moves here.
                self._cond.wait(0.05)
            return self._now_ms
