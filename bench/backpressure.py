"""Backpressure benchmark: push faster than a slow pipeline can process, with and without the bounds.

Each mode runs in its own child process (so its peak RSS is its own): a StreamingContext on the system
clock with `--batch-ms` batches, one pushStream, and a pipeline whose only output operation collects
each batch, checks every record off, and spends `--cost-us` microseconds per record (a sleep: the
sustainable rate is 1e6 / cost-us records/s). `--producers` producer processes push frames of
`--frame-records` records through `PushClient` (each send waits for its ack) at `--speedup` times the
sustainable rate in total (0: as fast as the receiver acknowledges) for `--seconds`; then the pipeline
drains and stops gracefully, and the child reports its figures as one JSON line.

Modes, in one run:
    unbounded  the bounds lifted by configuration (what the engine did before issue 12)
    off        the default bounds, `spark.streaming.backpressure.enabled` false
    on         the default bounds and the PID estimator (`spark.streaming.backpressure.enabled` true)

Prints per mode: peak RSS growth (VmHWM minus the RSS once started), acknowledged records/s, mean
processing time of a batch and the largest scheduling delay, and the on/off ratios. Every acknowledged
record must be in the output exactly once (the run fails otherwise). Loopback only; producer processes
are joined with a bound and killed if they outlive it.

    .venv/bin/python bench/backpressure.py [--seconds 60] [--modes unbounded,off,on]

`pipeline` runs one mode and prints its JSON line (tests/e2e/test_backpressure.py uses it as its load).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dstream import Conf, Context, StreamingContext
from dstream.client import PushClient
from dstream.errors import DStreamError
from dstream.streaming.listener import StreamingListener

MODES = {
    "unbounded": {
        "dstream.streaming.pendingBatchesMax": str(10**9),
        "dstream.streaming.generatorEventsMax": str(10**9),
        "dstream.receiver.unallocated_records_max": str(10**12),
    },
    "off": {"spark.streaming.backpressure.enabled": "false"},
    "on": {"spark.streaming.backpressure.enabled": "true"},
}
DRAIN_S_MAX = 300.0
JOIN_S_MAX = 60.0
PAD = "x" * 64


def rss_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS now, VmHWM the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def produce(port: int, producer: int, args: dict[str, Any], go: Any, results: Any) -> None:
    """One producer process: push frames until its time is up; report how many records were acked."""
    acked, frame_n = 0, args["frame_records"]
    rate = args["rate_per_producer"]  # records/s, 0: unpaced
    try:
        with PushClient("127.0.0.1", port, f"p{producer}", timeout_s=args["client_timeout_s"]) as client:
            client.send([])
            results.put(("ready", producer, 0))
            go.wait(JOIN_S_MAX)
            start = time.monotonic()
            deadline = start + args["seconds"]
            while time.monotonic() < deadline and acked < args["records_max"]:
                frame = [f"{producer}:{acked + i}:{PAD}" for i in range(frame_n)]
                client.send(frame)
                acked += frame_n
                if rate:  # keep to the offered rate: sleep until this frame's slot
                    ahead_s = acked / rate - (time.monotonic() - start)
                    if ahead_s > 0:
                        time.sleep(
                            min(ahead_s, deadline - time.monotonic()) if deadline > time.monotonic() else 0
                        )
    except DStreamError as exc:  # not acknowledged within the client's timeout: stop producing
        results.put(("done", producer, acked, repr(exc)))
        return
    results.put(("done", producer, acked, ""))


class Output:
    """Counts each record id seen by the pipeline (a byte per id, per producer) and the batch figures."""

    def __init__(self, cost_s: float) -> None:
        self.cost_s = cost_s
        self.seen: dict[int, bytearray] = {}
        self.records = 0
        self.lock = threading.Lock()

    def process(self, rdd: Any) -> None:
        records = rdd.collect()
        with self.lock:
            for record in records:
                text = record.decode() if isinstance(record, bytes) else record
                producer, seq, _ = text.split(":", 2)
                counts = self.seen.setdefault(int(producer), bytearray())
                index = int(seq)
                if index >= len(counts):
                    counts.extend(bytes(index + 1 - len(counts) + 100_000))
                counts[index] = min(255, counts[index] + 1)
            self.records += len(records)
        time.sleep(len(records) * self.cost_s)


class Delays(StreamingListener):
    def __init__(self) -> None:
        self.processing_ms: list[int] = []
        self.scheduling_ms_max = 0

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        info = batchCompleted.batchInfo()
        processing, scheduling = info.processingDelay(), info.schedulingDelay()
        if processing is not None and info.numRecords():
            self.processing_ms.append(processing)
        if scheduling is not None:
            self.scheduling_ms_max = max(self.scheduling_ms_max, scheduling)


def run_pipeline(mode: str, args: argparse.Namespace, extra_conf: dict[str, str]) -> dict[str, Any]:
    """One mode in this process: start the context, push, drain, stop; the figures as a dict."""
    conf = Conf()
    for key, value in {**MODES[mode], **extra_conf}.items():
        conf.set(key, value)
    ssc = StreamingContext(
        Context("local[2]", appName=f"backpressure-{mode}", conf=conf), args.batch_ms / 1000
    )
    stream = ssc.pushStream(host="127.0.0.1", port=0)
    output, delays = Output(args.cost_us / 1e6), Delays()
    stream.foreachRDD(output.process)
    ssc.addStreamingListener(delays)
    ssc.start()
    base_kb = rss_kb("VmRSS")
    sustainable = 1e6 / args.cost_us
    per_producer = sustainable * args.speedup / args.producers if args.speedup else 0
    spec = {
        "seconds": args.seconds,
        "frame_records": args.frame_records,
        "rate_per_producer": per_producer,
        "records_max": int(args.seconds * 2_000_000),  # a bound on any producer's loop
        "client_timeout_s": args.client_timeout_s,
    }
    ctx = multiprocessing.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=produce, args=(stream.port, p, spec, go, results)) for p in range(args.producers)
    ]
    for proc in procs:
        proc.start()
    acked: dict[int, int] = {}
    errors: list[str] = []
    try:
        for _ in procs:
            got = results.get(timeout=JOIN_S_MAX)
            assert got[0] == "ready", got
        start = time.monotonic()
        go.set()
        for _ in procs:
            got = results.get(timeout=args.seconds + args.client_timeout_s + JOIN_S_MAX)
            acked[got[1]] = got[2]
            if got[3]:
                errors.append(got[3])
        push_s = time.monotonic() - start
    finally:
        for proc in procs:
            proc.join(JOIN_S_MAX)
            if proc.is_alive():
                proc.kill()
    total = sum(acked.values())
    drain_start = time.monotonic()
    while time.monotonic() - drain_start < DRAIN_S_MAX and count_acked_seen(output, acked) < total:
        time.sleep(0.2)
    drain_s = time.monotonic() - drain_start
    ssc.stop(stopSparkContext=True, stopGraceFully=True)
    lost = total - count_acked_seen(output, acked)
    duplicated = sum(1 for counts in output.seen.values() for c in counts if c > 1)
    processing = delays.processing_ms
    return {
        "mode": mode,
        "rss_growth_mb": (rss_kb("VmHWM") - base_kb) / 1024,
        "acked": total,
        "acked_per_s": total / push_s,
        "push_s": push_s,
        "drain_s": drain_s,
        "processed": output.records,
        "lost": lost,
        "duplicated": duplicated,
        "processing_ms_mean": sum(processing) / len(processing) if processing else 0.0,
        "scheduling_ms_max": delays.scheduling_ms_max,
        "sustainable_per_s": sustainable,
        "producer_errors": errors,
    }


def count_acked_seen(output: Output, acked: dict[int, int]) -> int:
    with output.lock:
        seen = 0
        for producer, n in acked.items():
            counts = output.seen.get(producer, bytearray())
            seen += sum(1 for c in counts[:n] if c)
        return seen


def add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the producers push")
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--frame-records", type=int, default=2000, help="records per send")
    parser.add_argument("--cost-us", type=float, default=20.0, help="pipeline cost per record (sleep)")
    parser.add_argument("--speedup", type=float, default=3.0, help="offered / sustainable rate; 0: flat out")
    parser.add_argument("--batch-ms", type=int, default=500)
    parser.add_argument("--client-timeout-s", type=float, default=120.0)
    parser.add_argument("--conf", action="append", default=[], help="extra key=value settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("pipeline", help="run one mode here and print its JSON line")
    one.add_argument("mode", choices=sorted(MODES))
    add_load_options(one)
    add_load_options(parser)
    parser.add_argument("--modes", default="unbounded,off,on")
    args = parser.parse_args()
    if args.command == "pipeline":
        extra = dict(item.split("=", 1) for item in args.conf)
        print(json.dumps(run_pipeline(args.mode, args, extra)), flush=True)
        return
    figures = {mode: run_child(mode, sys.argv[1:]) for mode in args.modes.split(",")}
    print(f"sustainable rate {1e6 / args.cost_us:,.0f} records/s, offered {args.speedup}x, {args.seconds} s")
    header = ("mode", "peak RSS growth", "acked/s", "batch ms", "sched ms max", "lost")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (10, 16, 10, 9, 13, 5), strict=True)))
    for mode, f in figures.items():
        print(
            f"{mode:>10} {f['rss_growth_mb']:>13,.0f} MB {f['acked_per_s']:>10,.0f} "
            f"{f['processing_ms_mean']:>9,.0f} {f['scheduling_ms_max']:>13,} {f['lost']:>5}"
        )
    if "on" in figures and "off" in figures:
        on, off = figures["on"], figures["off"]
        print(
            f"on/off: RSS growth {on['rss_growth_mb'] / max(off['rss_growth_mb'], 1):.2f}, "
            f"acked rate {on['acked_per_s'] / off['acked_per_s']:.2f}, "
            f"batch time {on['processing_ms_mean'] / max(off['processing_ms_mean'], 1):.2f}"
        )
    bad = {m: (f["lost"], f["duplicated"]) for m, f in figures.items() if f["lost"] or f["duplicated"]}
    if bad:
        raise SystemExit(f"acknowledged records lost or duplicated (lost, duplicated): {bad}")


def run_child(mode: str, argv: list[str]) -> dict[str, Any]:
    """Run one mode in a child process (its own RSS); killed if it outlives its bound."""
    options: list[str] = []
    skip_value = False
    for arg in argv:  # everything but --modes (and its value) goes to the child
        if skip_value or arg.startswith("--modes"):
            skip_value = arg == "--modes" and not skip_value
            continue
        options.append(arg)
    proc = subprocess.run(
        [sys.executable, __file__, "pipeline", mode, *options],
        capture_output=True, text=True, timeout=DRAIN_S_MAX * 2 + 600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"mode {mode} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
