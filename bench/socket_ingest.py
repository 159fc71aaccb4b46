"""socketTextStream before and after it became a receiver stream (issue 11), alternated in one run.

Each measurement runs in a fresh process against the dstream of a given source tree (`--trees
name=path ...`, e.g. a detached worktree of the older commit), so two versions are compared on the
same machine at the same time; rounds alternate the trees and medians are reported.

- *alone* / *beside*: lines per second the stream takes from a sender process (a 127.0.0.1 server
  sending 10-word lines as fast as it can) with 200 ms batches whose job does nothing, alone and beside
  two CPU-bound threads (as the local backend's task threads are while jobs run). Measured by the
  stream's `received_count` over `--window-s`.
- *unbounded*: *alone* with the records bound lifted (the old stream's `buffer_lines_max`, the
  receiver's `unallocated_records_max`), so the reader's own speed shows, not the default bound.
- *word count*: lines per second through completed batches of a network word count (1 s batches,
  `flatMap`/`map`/`reduceByKey`, collected), from the listener's `numRecords`, over `--e2e-window-s`
  after the first batch.

A tree name ending in `:MEMORY_ONLY` passes that storage level to `socketTextStream` (the receiver
stream's default is PySpark's MEMORY_AND_DISK_2; the old stream ignored the argument).

Run: `.venv/bin/python bench/socket_ingest.py --trees old=/tmp/socket-old new=. [--rounds 3]`.
Every wait is bounded; the only listener is the sender's, on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
START_TIMEOUT_S = 30.0
CHILD_TIMEOUT_S = 180.0
WARM_UP_S = 1.0
MODES = ("alone", "beside", "unbounded", "e2e")
UNBOUNDED_LINES = 50_000_000


def child(tree: str, level_name: str | None, mode: str, window_s: float) -> dict[str, Any]:
    """One measurement with the dstream of `tree` (imported first on sys.path)."""
    sys.path.insert(0, tree)
    sys.path.insert(1, str(BENCH_DIR))
    from cpu_threads import cpu_bound_threads
    from line_sender import SENDER

    import dstream
    from dstream import Context, StorageLevel, StreamingContext
    from dstream.streaming import StreamingListener

    sender = subprocess.Popen([sys.executable, "-c", SENDER], stdout=subprocess.PIPE, text=True)
    ssc: Any = None
    try:
        assert sender.stdout is not None
        port = int(sender.stdout.readline())
        conf = dstream.Conf()
        if mode == "unbounded":  # lift the records bound of either version: the reader's own speed
            conf.set("dstream.receiver.unallocated_records_max", str(UNBOUNDED_LINES))
        ssc = StreamingContext(
            Context("local[2]", appName="bench-socket", conf=conf), 0.2 if mode != "e2e" else 1.0
        )
        args = (getattr(StorageLevel, level_name),) if level_name else ()
        stream = ssc.socketTextStream("127.0.0.1", port, *args)
        if mode == "unbounded" and hasattr(stream, "_buffer_lines_max"):  # the old stream's own bound
            stream._buffer_lines_max = UNBOUNDED_LINES
        if mode == "e2e":
            done: list[tuple[float, int]] = []

            class Batches(StreamingListener):
                def onBatchCompleted(self, batchCompleted: Any) -> None:
                    done.append((time.perf_counter(), batchCompleted.batchInfo().numRecords()))

            ssc.addStreamingListener(Batches())
            counts = stream.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b)
            counts.foreachRDD(lambda rdd: rdd.collect())
        else:
            stream.foreachRDD(lambda rdd: None)  # batches only take the received lines
        ssc.start()
        if not stream.wait_for_received(1, START_TIMEOUT_S):
            raise TimeoutError(f"the socket stream received nothing in {START_TIMEOUT_S} s")
        pause = threading.Event()
        if mode == "e2e":
            deadline = time.monotonic() + START_TIMEOUT_S
            while not done and time.monotonic() < deadline:
                pause.wait(0.05)
            start, first = time.perf_counter(), len(done)
            pause.wait(window_s)
            finished = done[first:]
            lines = sum(n for _, n in finished)
            elapsed = (finished[-1][0] - start) if finished else window_s
        else:
            with cpu_bound_threads(2 if mode == "beside" else 0):
                pause.wait(WARM_UP_S)  # past the first fill of the bounds: the steady rate
                start_lines, start = stream.received_count, time.perf_counter()
                pause.wait(window_s)
                lines, elapsed = stream.received_count - start_lines, time.perf_counter() - start
        return {"lines_per_s": lines / elapsed, "dstream": dstream.__file__}
    finally:
        if ssc is not None:
            ssc.stop(stopSparkContext=True)
        sender.kill()
        sender.wait()


def measure(tree: str, level: str | None, mode: str, window_s: float) -> float:
    cmd = [sys.executable, __file__, "--child", tree, "--mode", mode, "--window-s", str(window_s)]
    if level:
        cmd += ["--level", level]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["dstream"].startswith(str(Path(tree).resolve())):
        raise RuntimeError(f"tree {tree} imported dstream from {result['dstream']}")
    return float(result["lines_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", nargs="*", default=[f"this={BENCH_DIR.parent}"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window-s", type=float, default=2.0)
    parser.add_argument("--e2e-window-s", type=float, default=6.0)
    parser.add_argument("--child")
    parser.add_argument("--mode", default="alone")
    parser.add_argument("--level")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(str(Path(args.child).resolve()), args.level, args.mode, args.window_s)))
        return
    trees = []
    for spec in args.trees:
        name, path = spec.split("=", 1)
        level = name.split(":", 1)[1] if ":" in name else None
        trees.append((name, str(Path(path).resolve()), level))
    results: dict[tuple[str, str], list[float]] = {}
    for round_no in range(args.rounds):
        order = trees if round_no % 2 == 0 else trees[::-1]
        for mode, window in [*((m, args.window_s) for m in MODES[:3]), ("e2e", args.e2e_window_s)]:
            for name, path, level in order:
                rate = measure(path, level, mode, window)
                results.setdefault((name, mode), []).append(rate)
                print(f"round {round_no + 1} {mode:6} {name:18} {rate:12,.0f} lines/s", flush=True)
    print(f"medians of {args.rounds} rounds (lines/s):")
    base = trees[0][0]
    for mode in MODES:
        base_median = statistics.median(results[(base, mode)])
        for name, _, _ in trees:
            median = statistics.median(results[(name, mode)])
            print(f"  {mode:6} {name:18} {median:12,.0f}  ({median / base_median:.2f}x {base})")


if __name__ == "__main__":
    main()
