"""Child process for the SIGKILL test: writes numbered records and acks each one on stdout.

Usage: python -m tests.wal.crash_child URL STORAGE_OPTIONS_JSON THREADS [BIG]
With THREADS > 1 the log is batched (group commit) and each thread writes its own numbered stream.
With BIG=1 records are megabytes long, so the kernel can be stopped inside one write() and leave a
torn record on disk (a fatal signal interrupts a large write between pages).
An ack line "<thread> <seq>" is printed only after write() has returned, i.e. once durable.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading

import wal

RECORDS_MAX = 100_000  # bounded: the parent kills long before this


def payload(thread: int, seq: int, big: bool = False) -> bytes:
    """Deterministic content of a record, so the parent can tell a misparsed one."""
    digest = hashlib.sha256(f"{thread}/{seq}".encode()).digest()
    return f"{thread} {seq} ".encode() + digest * (seq % 90 + (65_536 if big else 0))


def main() -> None:
    url, options, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    big = len(sys.argv) > 4 and sys.argv[4] == "1"
    log = wal.open_wal(url, storage_options=options, batched=threads > 1, rolling_interval_ms=50)
    lock = threading.Lock()

    def run(thread: int) -> None:
        for seq in range(RECORDS_MAX):
            log.write(payload(thread, seq, big), seq)
            with lock:
                sys.stdout.write(f"{thread} {seq}\n")
                sys.stdout.flush()

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
