"""Shared test helpers: a recording push target and bounded waits."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from dstream.rdd.storage import StorageLevel
from dstream.receiver.receiver import Receiver

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


class CountingReceiver(Receiver):
    """Stores 0..total-1 in chunks from its own thread; fails the ways the test asks it to."""

    def __init__(
        self, total: int, chunk: int = 10, fail_starts: int = 0, crash_at: int | None = None
    ) -> None:
        super().__init__(StorageLevel.MEMORY_ONLY)
        self.total, self.chunk = total, chunk
        self.fail_starts, self.crash_at = fail_starts, crash_at
        self.starts = 0
        self.next = 0  # survives restarts: the source's position, acknowledged after store()
        self._thread: threading.Thread | None = None

    def onStart(self) -> None:
        self.starts += 1
        if self.starts <= self.fail_starts:
            raise RuntimeError(f"cannot connect (attempt {self.starts})")
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        try:
            while not self.isStopped() and self.next < self.total:
                if self.crash_at is not None and self.next >= self.crash_at:
                    self.crash_at = None
                    raise ConnectionError("connection reset")
                upto = min(self.next + self.chunk, self.total)
                self.store(list(range(self.next, upto)))
                self.next = upto
        except Exception as exc:
            self.restart("source failed", exc, delay_ms=1)

    def onStop(self) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(WAIT_S)


class HandFedReceiver(Receiver):
    """Stores exactly what the test hands it, from the test's own threads (no thread of its own)."""

    def __init__(self) -> None:
        super().__init__(StorageLevel.MEMORY_ONLY)

    def onStart(self) -> None:
        pass

    def onStop(self) -> None:
        pass
