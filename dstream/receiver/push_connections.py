"""The push receiver's connection table: a bounded set of connections, and which one to evict.

A slot is held by a connection from accept to close. A connection is *idle* while it waits for the first
byte of its next frame (since its admission, then since its last reply), and *busy* from that byte until
its reply is sent (reading a frame, waiting for
its records to be durable). When the table is full, a new connection evicts the connection that has been
idle longest, so silent connections cannot lock producers out for `idle_timeout_s`; a busy one is never
evicted (its frame is bounded by `frame_timeout_s` anyway). Only when every slot is busy is the new
connection refused. The decision is here, without sockets; the receiver does the closing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

Conn = TypeVar("Conn")


class ConnectionTable(Generic[Conn]):
    """At most `connections_max` connections, each idle (since a time) or busy.

    Args:
        connections_max: slots at most.
        monotonic_s: the clock idle times are measured on (seconds).
    """

    def __init__(self, connections_max: int, monotonic_s: Callable[[], float] = time.monotonic) -> None:
        self.connections_max = connections_max
        self._monotonic_s = monotonic_s
        self._idle_since: dict[Conn, float | None] = {}  # None while busy
        self._lock = threading.Lock()
        self.evictions = 0

    def admit(self, conn: Conn) -> tuple[bool, Conn | None]:
        """Add `conn` (idle) if a slot is free or one can be freed; return (admitted, evicted connection)."""
        with self._lock:
            evicted = None
            if len(self._idle_since) >= self.connections_max:
                idle = [(since, c) for c, since in self._idle_since.items() if since is not None]
                if not idle:
                    return False, None
                evicted = min(idle, key=lambda entry: entry[0])[1]  # the first of equals: admitted earliest
                del self._idle_since[evicted]
                self.evictions += 1
            self._idle_since[conn] = self._monotonic_s()
            return True, evicted

    def mark_idle(self, conn: Conn) -> None:
        """`conn` waits for its next frame: it may be evicted from now on."""
        with self._lock:
            if conn in self._idle_since:
                self._idle_since[conn] = self._monotonic_s()

    def mark_busy(self, conn: Conn) -> None:
        """`conn` is inside a frame or waiting for its reply: not evictable."""
        with self._lock:
            if conn in self._idle_since:
                self._idle_since[conn] = None

    def discard(self, conn: Conn) -> None:
        with self._lock:
            self._idle_since.pop(conn, None)

    def busy_count(self) -> int:
        """How many connections are inside a frame or waiting for their reply."""
        with self._lock:
            return sum(1 for since in self._idle_since.values() if since is None)

    def __contains__(self, conn: object) -> bool:
        with self._lock:
            return conn in self._idle_since

    def __len__(self) -> int:
        with self._lock:
            return len(self._idle_since)

    def connections(self) -> list[Conn]:
        with self._lock:
            return list(self._idle_since)
