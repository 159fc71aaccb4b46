"""Test doubles around the real WAL: a wrapper that fails chosen writes, and WAL openers for tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from dstream.receiver.block_handler import STATE_MAGIC
from wal import RecordHandle, WALTimeoutError, WriteAheadLog, open_wal


class FailingLog:
    """Delegates to a real WAL but raises OSError on the next `fail_next_writes` writes."""

    def __init__(self, wrapped: WriteAheadLog) -> None:
        self.wrapped = wrapped
        self.fail_next_writes = 0

    def write(self, data: bytes, time_ms: int) -> RecordHandle:
        if self.fail_next_writes:
            self.fail_next_writes -= 1
            raise OSError("injected write failure")
        return self.wrapped.write(data, time_ms)

    def read(self, handle: Any) -> bytes:
        return self.wrapped.read(handle)

    def read_all(self) -> Iterator[bytes]:
        return self.wrapped.read_all()

    def clean(self, before_ms: int, *, wait: bool = False) -> None:
        self.wrapped.clean(before_ms, wait=wait)

    def close(self) -> None:
        self.wrapped.close()


def memory_wal_url() -> str:
    """A fresh memory:// WAL location (the memory filesystem is shared by the whole process)."""
    return f"memory://receiver-tests/{uuid.uuid4().hex}"


def open_memory_wal(rolling_interval_ms: int = 60_000) -> WriteAheadLog:
    return open_wal(memory_wal_url(), rolling_interval_ms=rolling_interval_ms)


class LateCommitLog(FailingLog):
    """A real WAL whose chosen block write times out (`WALTimeoutError`) and is committed later by `land()`.

    This is the documented contract of `BatchedWriteAheadLog.write`: "not durable within timeout_s; the
    record may still be committed later".
    """

    def __init__(self, wrapped: WriteAheadLog) -> None:
        super().__init__(wrapped)
        self.time_out_next_write = False
        self.held: list[tuple[bytes, int]] = []

    def write(self, data: bytes, time_ms: int) -> RecordHandle:
        if self.time_out_next_write and not data.startswith(STATE_MAGIC):  # blocks only, not state records
            self.time_out_next_write = False
            self.held.append((data, time_ms))
            raise WALTimeoutError("write not durable within 30s (injected); may still be committed later")
        return super().write(data, time_ms)

    def land(self) -> None:
        """Commit the timed-out records now, after the writes that followed them."""
        for data, time_ms in self.held:
            self.wrapped.write(data, time_ms)
        self.held.clear()
