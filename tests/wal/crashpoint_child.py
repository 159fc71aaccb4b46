"""Child process for the WAL crash-point tests: writes numbered records, printing "ack N" after each.

Usage: python -m tests.wal.crashpoint_child URL
Record N is b"record N" at time N * STEP_MS, and segments roll every ROLLING_INTERVAL_MS, so segment
k holds records 11k-ish (the first segment records 0..10, the second starts at record 11). The parent
sets DSTREAM_CRASH_POINT to a WAL crash point; the process SIGKILLs itself there.
"""

from __future__ import annotations

import sys

import wal

RECORDS_N = 40
STEP_MS = 100
ROLLING_INTERVAL_MS = 1000
FIRST_SEGMENT_RECORDS = ROLLING_INTERVAL_MS // STEP_MS + 1  # times 0..1000 inclusive


def record(n: int) -> bytes:
    return f"record {n}".encode()


def main() -> None:
    log = wal.open_wal(sys.argv[1], rolling_interval_ms=ROLLING_INTERVAL_MS)
    for n in range(RECORDS_N):
        log.write(record(n), n * STEP_MS)
        print(f"ack {n}", flush=True)
    log.close()


if __name__ == "__main__":
    main()
