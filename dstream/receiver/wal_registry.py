"""Per-process registry of open receiver WALs, so block readers reuse the writer's log instead of reopening.

A block RDD task reads a block whose in-memory copy is gone from the receiver WAL by its record handle.
In the process that writes the log (the local backend's driver) the open log is registered here; in any
other process (a restarted driver, a Dask worker) the reader opens the log at its URL once and caches it.
Opening never creates anything and reading by handle never changes the log.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from wal import WriteAheadLog, open_wal

_lock = threading.Lock()
_logs: dict[str, WriteAheadLog] = {}


def register_wal(url: str, log: WriteAheadLog) -> None:
    with _lock:
        _logs[url] = log


def unregister_wal(url: str, log: WriteAheadLog) -> None:
    with _lock:
        if _logs.get(url) is log:
            del _logs[url]


def wal_for_reading(url: str, storage_options: Mapping[str, Any] | None = None) -> WriteAheadLog:
    """The registered log at `url`, or one opened (and cached) for reading."""
    with _lock:
        log = _logs.get(url)
        if log is None:
            log = _logs[url] = open_wal(url, storage_options=storage_options)
        return log
