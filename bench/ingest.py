"""Ingest benchmark: PushClient -> push receiver -> count, with the receiver WAL off and on, in one run.

Each mode starts a ReceiverTracker with one PushReceiver, lets `--producers` client processes each push
`--frames` frames of `--records` records (every send waits for its ack), then counts the stored records by
reading every block back. WAL off keeps blocks in memory only; WAL on writes every block to the receiver
WAL (local disk, fsync on each group commit) and every block-added event to the metadata WAL before the
ack. The floor (docs/architecture.md section 8) is a plain Python loop over the same records in this
process.

    .venv/bin/python bench/ingest.py [--producers 4] [--frames 20] [--records 5000] [--beside-cpu-threads 2]

Prints records/s per mode and the WAL-on / WAL-off ratio (target: at least 0.7). With
`--beside-cpu-threads N`, N threads spin in pure Python in the receiver's process while the producers
push, as the local backend's task threads do while a job runs: the receiver's threads then wait for
the GIL after every blocking call.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cpu_threads import cpu_bound_threads

from dstream.client import PushClient
from dstream.clock import SystemClock
from dstream.config import ReceiverConfig
from dstream.rdd.storage import StorageLevel
from dstream.receiver.block_rdd import block_refs, read_block
from dstream.receiver.push import PushReceiver
from dstream.receiver.receiver_tracker import ReceiverTracker

RUN_TIMEOUT_S = 300.0


def make_frames(producer: int, frames: int, records: int) -> list[list[str]]:
    return [[f"p{producer}-f{f}-r{r}-payload-0123456789" for r in range(records)] for f in range(frames)]


def produce(port: int, producer: int, frames: int, records: int, go: Any, results: Any) -> None:
    """One producer process: connect, wait for the start signal, push every frame, report."""
    batch = make_frames(producer, frames, records)
    try:
        with PushClient("127.0.0.1", port, f"producer-{producer}", timeout_s=RUN_TIMEOUT_S) as client:
            client.send([])  # connect (HELLO) before the clock starts
            results.put(("ready", producer))
            go.wait(RUN_TIMEOUT_S)
            for frame in batch:
                client.send(frame)
        results.put(("done", producer))
    except BaseException as exc:
        results.put(("error", repr(exc)))


def run_mode(wal: bool, producers: int, frames: int, records: int, ckpt: str | None) -> tuple[float, int]:
    """Push everything through one receiver from producer processes; return (seconds, records counted)."""
    # Nothing allocates the blocks here (they are counted unallocated), so lift the bound on them.
    config = ReceiverConfig.from_conf(
        wal_enabled=wal, wal_fsync="always", wal_batched=True, unallocated_records_max=10**12
    )
    tracker = ReceiverTracker(SystemClock(), config, checkpoint_dir=ckpt)
    receiver = PushReceiver(storageLevel=StorageLevel.MEMORY_ONLY, connections_max=producers + 4)
    tracker.add_receiver(0, receiver)
    tracker.start()
    ctx = multiprocessing.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=produce, args=(receiver.port, p, frames, records, go, results))
        for p in range(producers)
    ]
    for proc in procs:
        proc.start()
    try:
        await_all(results, "ready", producers)
        start = time.perf_counter()
        go.set()
        await_all(results, "done", producers)
        infos = tracker.block_tracker.get_unallocated_blocks(0)
        refs = block_refs(infos, tracker.wal_location(0))
        counted = sum(len(read_block(ref, tracker.executor)) for ref in refs)
        elapsed = time.perf_counter() - start
    finally:
        for proc in procs:
            proc.join(RUN_TIMEOUT_S)
        for info in infos:
            tracker.blocks.remove(info.block_id)
        tracker.stop()
    return elapsed, counted


def await_all(results: Any, kind: str, count: int) -> None:
    for _ in range(count):
        got = results.get(timeout=RUN_TIMEOUT_S)
        if got[0] != kind:
            raise RuntimeError(f"producer failed: {got}")


def plain_loop(frames: list[list[list[str]]]) -> float:
    start = time.perf_counter()
    count = 0
    for per_producer in frames:
        for frame in per_producer:
            for record in frame:
                count += len(record) > 0
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--frames", type=int, default=20, help="frames per producer")
    parser.add_argument("--records", type=int, default=5000, help="records per frame")
    parser.add_argument("--repeats", type=int, default=3, help="runs per mode; the best is reported")
    parser.add_argument(
        "--beside-cpu-threads", type=int, default=0, help="pure-Python threads spinning beside the receiver"
    )
    args = parser.parse_args()
    frames = [make_frames(p, args.frames, args.records) for p in range(args.producers)]
    total = args.producers * args.frames * args.records
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for mode in ("wal-off", "wal-on"):
            with (
                tempfile.TemporaryDirectory(prefix="dstream-ingest-") as tmp,
                cpu_bound_threads(args.beside_cpu_threads),
            ):
                ckpt = str(Path(tmp) / "ckpt") if mode == "wal-on" else None
                seconds, counted = run_mode(mode == "wal-on", args.producers, args.frames, args.records, ckpt)
            if counted != total:
                raise SystemExit(f"{mode}: counted {counted} records, pushed {total}")
            best[mode] = min(best.get(mode, float("inf")), seconds)
    floor = plain_loop(frames)
    print(f"records: {total} ({args.producers} producers x {args.frames} frames x {args.records} records)")
    if args.beside_cpu_threads:
        print(f"beside {args.beside_cpu_threads} CPU-bound threads in the receiver's process")
    print(f"plain Python loop (floor): {total / floor:>12,.0f} records/s")
    for mode in ("wal-off", "wal-on"):
        print(f"{mode:>25}: {total / best[mode]:>12,.0f} records/s  ({best[mode]:.3f} s)")
    print(f"WAL-on / WAL-off ratio: {best['wal-off'] / best['wal-on']:.2f} (target >= 0.70)")


if __name__ == "__main__":
    main()
