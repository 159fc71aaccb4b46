"""WAL throughput and latency on local disk with fsync, beside a raw os.write + os.fsync baseline.

Cases: 1 KiB and 64 KiB records; one writer calling `write` (one fsync per record), and 8 threads
writing through `BatchedWriteAheadLog` (group commit). Each baseline is a plain loop of `os.write` +
`os.fsync` on the same disk in the same run: one record per fsync for the single writer, and the
group commit's own mean group size per fsync for the 8-writer case (same bytes per fsync). The WAL
and its baseline alternate in ROUNDS short rounds and their totals are compared, so that load from
other processes on a shared machine hits both alike. Every case is bounded in time and record count.
`--key` opens every log with a key, so each record carries a MAC (`wal.auth`); the baselines are the
same, so the ratios with and without it show what authentication costs.

Run: .venv/bin/python bench/wal.py [--dir DIR] [--seconds S] [--key]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import wal  # the package, not this file: the repo root is first on sys.path

RECORDS_MAX = 200_000
KEY: BenchKey | None = None  # set by --key
WRITERS = 8
ROUNDS = 6


@dataclass(frozen=True)
class BenchKey:
    key_id: str
    secret: bytes


@dataclass
class Result:
    records: int
    payload_bytes: int
    seconds: float
    latencies_s: list[float]

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.payload_bytes / self.seconds / 1e6

    def __add__(self, other: Result) -> Result:
        return Result(self.records + other.records, self.payload_bytes + other.payload_bytes,
                      self.seconds + other.seconds, self.latencies_s + other.latencies_s)  # fmt: skip

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 if ordered else float("nan")


def raw_baseline(directory: str, record_bytes: int, per_fsync: int, budget_s: float) -> Result:
    """A plain loop: write `per_fsync` records with os.write, then os.fsync; repeat."""
    path = os.path.join(directory, "raw.bin")
    block = os.urandom(record_bytes) * per_fsync
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    records, start = 0, time.perf_counter()
    try:
        while time.perf_counter() - start < budget_s and records < RECORDS_MAX:
            os.write(fd, block)
            os.fsync(fd)
            records += per_fsync
    finally:
        os.close(fd)
        os.unlink(path)
    return Result(records, records * record_bytes, time.perf_counter() - start, [])


def fresh_log(directory: str, batched: bool, record_bytes: int) -> wal.WriteAheadLog:
    """A new log whose segment already exists: creating it (once a minute in use) is not timed."""
    options = {} if KEY is None else {"key": KEY}
    log = wal.open_wal(tempfile.mkdtemp(dir=directory), fsync="always", batched=batched, **options)
    log.write(os.urandom(record_bytes), int(time.time() * 1000))
    return log


def single_writer(directory: str, record_bytes: int, budget_s: float) -> Result:
    payload = os.urandom(record_bytes)
    log = fresh_log(directory, False, record_bytes)
    latencies: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < budget_s and len(latencies) < RECORDS_MAX:
        t0 = time.perf_counter()
        log.write(payload, int(time.time() * 1000))
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    log.close()
    return Result(len(latencies), len(latencies) * record_bytes, elapsed, latencies)


def batched_writers(directory: str, record_bytes: int, budget_s: float) -> tuple[Result, float]:
    """8 threads through group commit; returns the result and the mean records per commit."""
    payload = os.urandom(record_bytes)
    log = fresh_log(directory, True, record_bytes)
    latencies: list[list[float]] = [[] for _ in range(WRITERS)]
    stop = threading.Event()

    def run(index: int) -> None:
        mine = latencies[index]
        while not stop.is_set() and len(mine) < RECORDS_MAX // WRITERS:
            t0 = time.perf_counter()
            log.write(payload, int(time.time() * 1000))
            mine.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WRITERS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    stop.wait(budget_s)
    stop.set()
    for thread in threads:
        thread.join(60)
    elapsed = time.perf_counter() - start
    stats = log.statistics()
    log.close()
    stats = replace(stats, records_written=stats.records_written - 1, commits=stats.commits - 1)  # warm-up
    flat = [x for mine in latencies for x in mine]
    per_commit = stats.records_written / max(1, stats.commits)
    return Result(len(flat), len(flat) * record_bytes, elapsed, flat), per_commit


def line(name: str, result: Result, baseline: Result | None) -> str:
    ratio = f"{result.mb_per_s / baseline.mb_per_s:5.2f}x raw" if baseline else "   (raw)"
    latency = f"p50 {result.p(0.5):6.2f} ms  p99 {result.p(0.99):6.2f} ms" if result.latencies_s else ""
    return (f"  {name:<34} {result.records_per_s:10.0f} rec/s {result.mb_per_s:8.2f} MB/s  {ratio}  "
            f"{latency}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".", help="directory on the disk to measure (default: .)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget per case")
    parser.add_argument("--key", action="store_true", help="authenticate every record (a MAC per record)")
    args = parser.parse_args()
    global KEY
    KEY = BenchKey("bench", b"bench-secret") if args.key else None
    directory = tempfile.mkdtemp(prefix="wal-bench-", dir=args.dir)
    try:
        for record_bytes in (1024, 65536):
            keyed = ", MAC per record" if KEY else ""
            print(f"records of {record_bytes // 1024} KiB, fsync on{keyed}, {args.seconds:.1f} s per case")
            budget_s = args.seconds / ROUNDS
            raw1 = one = raw_group = many = Result(0, 0, 0.0, [])
            groups = []
            for _ in range(ROUNDS):
                raw1 += raw_baseline(directory, record_bytes, 1, budget_s)
                one += single_writer(directory, record_bytes, budget_s)
                batch, group = batched_writers(directory, record_bytes, budget_s)
                many += batch
                groups.append(group)
                raw_group += raw_baseline(directory, record_bytes, max(1, round(group)), budget_s)
            group = sum(groups) / len(groups)
            print(line("raw os.write+os.fsync, 1/fsync", raw1, None))
            print(line("WAL, 1 writer", one, raw1))
            print(line(f"raw os.write+os.fsync, {round(group)}/fsync", raw_group, None))
            print(line(f"WAL batched, {WRITERS} writers ({group:.1f}/commit)", many, raw_group))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
