"""`cpu_bound_threads`: threads that hold the GIL in pure Python, as the local backend's task threads do.

Shared by the benchmarks that measure what running tasks cost other threads of the same process
(`bench/gil.py`, `bench/ingest.py --beside-cpu-threads`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def cpu_bound_threads(n: int) -> Iterator[None]:
    """`n` threads spinning in pure Python for the duration of the block; joined on exit."""
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            for i in range(10_000):
                x += i

    threads = [threading.Thread(target=spin, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join()
