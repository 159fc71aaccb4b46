"""Per-executor registry of open receiver WALs, so block readers reuse the writer's log instead of reopening.

A block RDD task reads a block whose in-memory copy is gone from the receiver WAL by its record handle.
On the executor that writes the log (the local backend's driver) the open log is registered in that
executor's `ReceiverWALs` (an `ExecutorEnv` service); on any other (a restarted driver, a Dask worker)
the reader opens the log at its URL once and keeps it until the executor closes.
Opening never creates anything and reading by handle never changes the log. Logs are opened with the
checkpoint key (`DSTREAM_CHECKPOINT_KEY`), so a record is authenticated before it is unpickled.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from checkpoint.envelope import signing_key_from_env
from dstream.backends.executor_env import ExecutorEnv, current_executor_env
from wal import WriteAheadLog, open_wal


class ReceiverWALs:
    """An executor's open receiver WALs by URL: the writer's log, or one opened once for reading."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, WriteAheadLog] = {}
        self._opened: set[str] = set()  # logs opened here for reading (closed with the executor)

    def register(self, url: str, log: WriteAheadLog) -> None:
        """Let readers on this executor use the writer's open `log` at `url`."""
        with self._lock:
            self._logs[url] = log
            self._opened.discard(url)

    def unregister(self, url: str, log: WriteAheadLog) -> None:
        """Forget `log` (its writer is closing it)."""
        with self._lock:
            if self._logs.get(url) is log:
                del self._logs[url]

    def for_reading(self, url: str, storage_options: Mapping[str, Any] | None = None) -> WriteAheadLog:
        """The registered log at `url`, or one opened (and kept) for reading."""
        with self._lock:
            log = self._logs.get(url)
            if log is None:
                key = signing_key_from_env()  # records are MAC-checked before a block is unpickled
                log = self._logs[url] = open_wal(url, storage_options=storage_options, key=key)
                self._opened.add(url)
            return log

    def close(self) -> None:
        """Close the logs this registry opened for reading (writers close their own)."""
        with self._lock:
            opened = [self._logs.pop(url) for url in self._opened if url in self._logs]
            self._opened.clear()
        for log in opened:
            log.close()


def receiver_wals(env: ExecutorEnv | None = None) -> ReceiverWALs:
    """The receiver WALs of executor `env` (default: the executor this task runs on)."""
    return (env or current_executor_env()).service("receiver-wals", ReceiverWALs)
