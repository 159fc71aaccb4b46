"""Shared test helpers: a recording push target and bounded waits."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

WAIT_S = 10.0


def wait_for(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Wait (bounded) until `predicate()` holds, polling on an Event rather than sleeping blindly."""
    tick = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if predicate():
            return
        tick.wait(0.01)
    raise AssertionError(f"condition not met within {timeout_s} s")


class Pushed:
    """Collects pushed blocks; `gate` (when cleared) holds the pusher to simulate a slow store."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, list[Any]]] = []
        self.errors: list[tuple[str, BaseException]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False
        self._lock = threading.Lock()

    def push(self, block_id: str, records: list[Any]) -> None:
        assert self.gate.wait(WAIT_S), "test gate never opened"
        if self.fail:
            raise OSError("store failed")
        with self._lock:
            self.blocks.append((block_id, list(records)))

    def on_error(self, message: str, error: BaseException) -> None:
        self.errors.append((message, error))

    def records(self) -> list[Any]:
        with self._lock:
            return [r for _, rs in self.blocks for r in rs]
