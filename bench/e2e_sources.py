"""End-to-end word count from a real receiver (socket, or push with the receiver WAL on), per master.

Used by `bench/wordcount.py --compare --sources socket push`: each measurement runs in a fresh process
(`python bench/e2e_sources.py --child ...`) on one master, so every master of a comparison is measured
in the same session under the same conditions.

- *socket*: `socketTextStream` from a sender process (`PACED_SENDER`: a 127.0.0.1 server writing
  10-word lines at the offered rate), the stream's default storage level.
- *push*: `pushStream` with the receiver WAL on (checkpoint directory in a temporary directory, fsync
  on each group commit) fed by `PUSH_PRODUCERS` producer processes, each sending frames of
  `PUSH_FRAME_LINES` 10-word lines with `PushClient.send` at its share of the offered rate (every send
  waits for its acknowledgement, given only once the block is durable).

Every receiver's bound on records stored and not yet allocated to a batch
(``dstream.receiver.unallocated_records_max``, default 200,000) is lifted to `UNALLOCATED_MAX` unless
`unallocated_max` says otherwise: with 1 s batches the default caps a receiver at about 200,000 lines/s
(it is a memory bound, so the producers wait), which would measure the bound and not the engine.

The job is a stateless word count (`flatMap -> map -> reduceByKey`, collected) or, with `stateful`, the
same plus `updateStateByKey` (checkpointed). The figure is lines per second through completed batches
(the listener's `numRecords`) over `window_s` after the first completed batch, beside the median batch
processing time over the same batches. `sustainable` searches for the highest offered rate that comes
through whole (90 %) with the median processing time under the 1 s interval, as bench/wordcount.py's
search does for the in-memory source; a flat-out offer (rate 0) measures what the receivers take while
the job falls behind, which is not a rate the job can keep.

Bounded: the sender writes only while its one connection is open and is killed at the end; producers
stop at the end of the window (a shared event) or after `PUSH_FRAMES_MAX` frames; every wait has a timeout.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import operator
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rate_search import next_rate

BENCH_DIR = Path(__file__).resolve().parent
if __name__ == "__main__":
    # Run as a script, this directory comes first on sys.path, and it holds wal.py and checkpoint.py,
    # which would shadow the packages of the same names. Imported (by bench/wordcount.py), the importer
    # chose the tree: a child of `wordcount.py --trees` must keep the tree it was given.
    # (Spawned producer processes inherit the parent's sys.path.)
    sys.path.insert(0, str(BENCH_DIR.parent))

BATCH_S = 1.0
START_TIMEOUT_S = 60.0
CHILD_TIMEOUT_S = 300.0
PUSH_PRODUCERS = 2
PUSH_FRAME_LINES = 5_000
PUSH_FRAMES_MAX = 20_000  # per producer: a bound on the loop, far above what a window takes
LINE = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10"
UNALLOCATED_MAX = 2_000_000  # records per receiver: 10x the default bound (see the module docstring)


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port: int = probe.getsockname()[1]
        return port


PACED_SENDER = """
import socket, sys, time
rate = float(sys.argv[1])
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
lines = 5_000
chunk = b"w1 w2 w3 w4 w5 w6 w7 w8 w9 w10\\n" * lines
start, sent = time.monotonic(), 0
try:
    while True:
        ahead = start + sent / rate - time.monotonic() if rate > 0 else 0.0
        if ahead > 0:
            time.sleep(ahead)  # pacing to the offered rate
        conn.sendall(chunk)
        sent += lines
except OSError:
    pass
"""  # like bench/line_sender.py's SENDER, at `rate` lines/s (0: as fast as the connection takes them)


def produce(port: int, producer: int, stop: Any, rate: float) -> None:
    """One producer process: push frames with acknowledgements, at `rate` lines/s (0: as fast as the
    acknowledgements come), until `stop` is set (bounded)."""
    from dstream.client import PushClient

    frame = [f"{LINE} p{producer}"] * PUSH_FRAME_LINES
    with PushClient("127.0.0.1", port, f"bench-{producer}", timeout_s=START_TIMEOUT_S) as client:
        start = time.monotonic()
        for sent in range(PUSH_FRAMES_MAX):
            ahead = start + sent * PUSH_FRAME_LINES / rate - time.monotonic() if rate > 0 else 0.0
            if stop.wait(max(ahead, 0.0)):
                return
            client.send(frame)


def child(
    master: str,
    source: str,
    stateful: bool,
    window_s: float,
    unallocated_max: int = UNALLOCATED_MAX,
    rate: float = 0.0,
) -> dict[str, Any]:
    """One measurement in this process, offering `rate` lines/s (0: flat out): {lines_per_s,
    processing_ms, batches}."""
    import dstream
    from dstream import Context, StreamingContext
    from dstream.streaming import StreamingListener

    done: list[tuple[float, int, float]] = []

    class Batches(StreamingListener):
        def onBatchCompleted(self, batchCompleted: Any) -> None:
            info = batchCompleted.batchInfo()
            done.append((time.perf_counter(), info.numRecords(), info.processingDelay() or 0.0))

    helpers: list[Any] = []
    ssc: Any = None
    stop = multiprocessing.get_context("spawn").Event()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        try:
            conf = dstream.Conf().set("dstream.receiver.unallocated_records_max", str(unallocated_max))
            if source == "push":
                conf.set("spark.streaming.receiver.writeAheadLog.enable", "true")
            ssc = StreamingContext(Context(master, appName=f"bench-e2e-{source}", conf=conf), BATCH_S)
            if source == "push" or stateful:
                ssc.checkpoint(tmp + "/ckpt")
            if source == "socket":
                sender = subprocess.Popen(
                    [sys.executable, "-c", PACED_SENDER, str(rate)], stdout=subprocess.PIPE, text=True
                )
                helpers.append(sender)
                assert sender.stdout is not None
                stream = ssc.socketTextStream("127.0.0.1", int(sender.stdout.readline()))
            else:
                port = free_port()
                stream = ssc.pushStream("127.0.0.1", port)
            pairs = stream.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(operator.add)
            if stateful:
                pairs = pairs.updateStateByKey(lambda vs, s: sum(vs, s or 0))
            pairs.foreachRDD(lambda rdd: rdd.collect())
            ssc.addStreamingListener(Batches())
            ssc.start()
            if source == "push":
                spawn = multiprocessing.get_context("spawn")
                for p in range(PUSH_PRODUCERS):
                    share = rate / PUSH_PRODUCERS
                    proc = spawn.Process(target=produce, args=(port, p, stop, share), daemon=True)
                    proc.start()
                    helpers.append(proc)
            pause = threading.Event()
            deadline = time.monotonic() + START_TIMEOUT_S
            while not any(n for _, n, _ in done) and time.monotonic() < deadline:
                pause.wait(0.05)
            if not any(n for _, n, _ in done):
                raise TimeoutError(f"no batch with records completed in {START_TIMEOUT_S:.0f} s")
            start, first = time.perf_counter(), len(done)
            pause.wait(window_s)
            finished = done[first:]
            if not finished:
                raise TimeoutError(f"no batch completed in the {window_s} s window")
            lines = sum(n for _, n, _ in finished)
            return {
                "lines_per_s": lines / (finished[-1][0] - start),
                "processing_ms": statistics.median(ms for _, _, ms in finished),
                "batches": len(finished),
            }
        finally:
            stop.set()
            for helper in helpers:
                if isinstance(helper, subprocess.Popen):
                    helper.kill()
                    helper.wait(timeout=30)
                else:
                    helper.join(timeout=30)
                    if helper.is_alive():
                        helper.kill()
                        helper.join(timeout=30)
            if ssc is not None:
                ssc.stop(stopSparkContext=True)


def measure(
    master: str,
    source: str,
    stateful: bool,
    window_s: float,
    unallocated_max: int = UNALLOCATED_MAX,
    rate: float = 0.0,
) -> dict[str, Any]:
    """Run `child` in a fresh interpreter and return its figures."""
    cmd = [sys.executable, __file__, "--child", "--master", master, "--source", source]
    cmd += ["--window-s", str(window_s), "--unallocated-max", str(unallocated_max), "--rate", str(rate)]
    cmd += ["--stateful"] if stateful else []
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


PROBES_MAX = 4
START_RATE = 150_000


def sustainable(
    master: str,
    source: str,
    stateful: bool,
    window_s: float,
    unallocated_max: int = UNALLOCATED_MAX,
    start_rate: float = START_RATE,
) -> tuple[dict[str, Any], list[str]]:
    """The highest offered rate (of at most `PROBES_MAX` probes, each a fresh `measure`) that the job
    sustains: the lines through completed batches reach 90 % of the offered rate and the median batch
    processing time stays under the 1 s interval. Returns that probe's figures (with "offered"; all
    zero if no probe sustained its rate) and a log line per probe.

    The next rate is bench/rate_search.py's `next_rate` (aim at 95 % of the interval, inside the bracket
    of rates that held and did not), or 95 % of what came through when the receiver or the producers
    fell short of the offer.
    """
    rate, over, log = float(start_rate), float("inf"), []
    best: dict[str, Any] = {"offered": 0.0, "lines_per_s": 0.0, "processing_ms": 0.0}
    for _ in range(PROBES_MAX):
        figures = measure(master, source, stateful, window_s, unallocated_max, rate)
        through, ms = float(figures["lines_per_s"]), float(figures["processing_ms"])
        kept_up = through >= 0.9 * rate
        ok = kept_up and ms < BATCH_S * 1000
        log.append(
            f"  offered {rate:>9,.0f} lines/s -> {through:>9,.0f} through, median processing"
            f" {ms:7.1f} ms {'ok' if ok else 'over'}"
        )
        if ok and rate > best["offered"]:
            best = {**figures, "offered": rate}
        if not ok:
            over = min(over, rate)
        if kept_up:
            target = next_rate(rate, ms, best["offered"], over, BATCH_S, float("inf"))
        else:  # the receiver or the producers fell short: aim under what came through
            target = through * 0.95 if through * 0.95 > best["offered"] else (best["offered"] + over) / 2
        if target is None or int(target) == int(rate):
            break
        rate = float(int(target))
    return best, log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--master", default="local[1]")
    parser.add_argument("--source", choices=("socket", "push"), default="socket")
    parser.add_argument("--stateful", action="store_true")
    parser.add_argument("--window-s", type=float, default=8.0)
    parser.add_argument("--unallocated-max", type=int, default=UNALLOCATED_MAX, help="records per receiver")
    parser.add_argument("--rate", type=float, default=0.0, help="lines/s offered (0: flat out)")
    parser.add_argument("--search", action="store_true", help="search for the sustainable rate")
    args = parser.parse_args()
    if args.child:
        figures = child(
            args.master, args.source, args.stateful, args.window_s, args.unallocated_max, args.rate
        )
        print(json.dumps(figures), flush=True)
        return
    if args.search:
        best, log = sustainable(args.master, args.source, args.stateful, args.window_s, args.unallocated_max)
        print("\n".join(log))
        print(f"sustained {best['lines_per_s']:,.0f} lines/s (offered {best['offered']:,.0f})")
        return
    result = measure(args.master, args.source, args.stateful, args.window_s, args.unallocated_max, args.rate)
    print(
        f"{args.master} {args.source} {'stateful' if args.stateful else 'stateless'}: "
        f"{result['lines_per_s']:,.0f} lines/s, median processing {result['processing_ms']:.0f} ms"
        f" over {result['batches']} batches"
    )


if __name__ == "__main__":
    main()
