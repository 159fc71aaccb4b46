"""End-to-end word count from a real receiver (socket, or push with the receiver WAL on), per master.

Used by `bench/wordcount.py --compare --sources socket push`: each measurement runs in a fresh process
(`python bench/e2e_sources.py --child ...`) on one master, so every master of a comparison is measured
in the same session under the same conditions.

- *socket*: `socketTextStream` from a sender process (bench/line_sender.py: a 127.0.0.1 server writing
  10-word lines as fast as the connection takes them), the stream's default storage level.
- *push*: `pushStream` with the receiver WAL on (checkpoint directory in a temporary directory, fsync
  on each group commit) fed by `PUSH_PRODUCERS` producer processes, each sending frames of
  `PUSH_FRAME_LINES` 10-word lines with `PushClient.send` (every send waits for its acknowledgement,
  given only once the block is durable).

The job is a stateless word count (`flatMap -> map -> reduceByKey`, collected) or, with `stateful`, the
same plus `updateStateByKey` (checkpointed). The figure is lines per second through completed batches
(the listener's `numRecords`) over `window_s` after the first completed batch, beside the median batch
processing time over the same batches: a rate whose processing time stays under the 1 s interval is
sustained; one above it is what the receivers took, with the job falling behind.

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


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port: int = probe.getsockname()[1]
        return port


def produce(port: int, producer: int, stop: Any) -> None:
    """One producer process: push frames with acknowledgements until `stop` is set (bounded)."""
    from dstream.client import PushClient

    frame = [f"{LINE} p{producer}"] * PUSH_FRAME_LINES
    with PushClient("127.0.0.1", port, f"bench-{producer}", timeout_s=START_TIMEOUT_S) as client:
        for _ in range(PUSH_FRAMES_MAX):
            if stop.is_set():
                return
            client.send(frame)


def child(master: str, source: str, stateful: bool, window_s: float) -> dict[str, Any]:
    """One measurement in this process: {lines_per_s, processing_ms, batches}."""
    sys.path.insert(1, str(BENCH_DIR))
    from line_sender import SENDER

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
            conf = dstream.Conf()
            if source == "push":
                conf.set("spark.streaming.receiver.writeAheadLog.enable", "true")
            ssc = StreamingContext(Context(master, appName=f"bench-e2e-{source}", conf=conf), BATCH_S)
            if source == "push" or stateful:
                ssc.checkpoint(tmp + "/ckpt")
            if source == "socket":
                sender = subprocess.Popen([sys.executable, "-c", SENDER], stdout=subprocess.PIPE, text=True)
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
                    proc = spawn.Process(target=produce, args=(port, p, stop), daemon=True)
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


def measure(master: str, source: str, stateful: bool, window_s: float) -> dict[str, Any]:
    """Run `child` in a fresh interpreter and return its figures."""
    cmd = [sys.executable, __file__, "--child", "--master", master, "--source", source]
    cmd += ["--window-s", str(window_s)] + (["--stateful"] if stateful else [])
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--master", default="local[1]")
    parser.add_argument("--source", choices=("socket", "push"), default="socket")
    parser.add_argument("--stateful", action="store_true")
    parser.add_argument("--window-s", type=float, default=8.0)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.master, args.source, args.stateful, args.window_s)), flush=True)
        return
    result = measure(args.master, args.source, args.stateful, args.window_s)
    print(
        f"{args.master} {args.source} {'stateful' if args.stateful else 'stateless'}: "
        f"{result['lines_per_s']:,.0f} lines/s, median processing {result['processing_ms']:.0f} ms"
        f" over {result['batches']} batches"
    )


if __name__ == "__main__":
    main()
