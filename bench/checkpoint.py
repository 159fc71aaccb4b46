"""Checkpoint benchmark: a stateful word count with async, sync and no data checkpoints; recovery time.

Each case runs the same pipeline on real time (SystemClock, `--batch-ms` batches): a generated input
of `--words` words per batch over `--keys` keys -> updateStateByKey -> count, for `--batches`
measured batches after 2 warm-up ones. Modes:

- "none, growing lineage": no checkpoint directory; the state stream's lineage is never cut (Spark
  refuses this pipeline), so every batch keeps the previous states' shuffles alive and gets slower.
- "none, localCheckpoint": no checkpoint directory (no metadata checkpoints, nothing written), but
  the state RDD is `localCheckpoint()`ed every `--interval-batches` batches, so its lineage stays
  as short as with data checkpoints. The fair baseline: what the pipeline costs without durability.
- "metadata only": checkpoint directory set (metadata checkpoints twice per batch, the driver
  lease) but the state stream is localCheckpointed instead of data-checkpointed: what metadata
  checkpoints alone cost, so that async minus this is what the data checkpoints cost.
- "async" / "sync": checkpoint directory set, state data-checkpointed every `--interval-batches`
  batches, metadata checkpoints twice per batch; they differ only in `dstream.checkpoint.async`.

The modes with a directory also run with it on an object store (`--store seaweedfs`: a
SeaweedFS `weed mini` subprocess on 127.0.0.1; `moto`: moto's server in this process, which also
competes for this process's GIL), where a data-checkpoint write takes longer than a batch.

Per batch two figures from the listener bus: latency, from the batch time to the end of its last
job (what a consumer of the output sees; it includes job generation, where sync mode writes its
checkpoint), and processing time, from the first job's start to the last job's end (the issue's
figure; it excludes generation, so it does not show sync mode's write). Cases alternate in rounds
so that load from other processes hits all alike.

Recovery: a child process runs the pipeline with a checkpoint directory and writes one output
directory per batch; it is SIGKILLed, restarted with getOrCreate, and the time from the kill to the
first output directory written after the restart is reported (process start and imports included).

    .venv/bin/python bench/checkpoint.py [--batches 25] [--rounds 3] [--batch-ms 200] [--store seaweedfs]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dstream.context import Conf, Context
from dstream.streaming import StreamingContext
from dstream.streaming.inputs import InputDStream
from dstream.streaming.listener import StreamingListener

RUN_TIMEOUT_S = 120.0
WARMUP_BATCHES = 2
MODES = ("none-growing", "none", "metadata", "async", "sync")
MODE_LABELS = {
    "none-growing": "none, growing lineage",
    "none": "none, localCheckpoint",
    "metadata": "metadata only, localCheckpoint",
    "async": "async (default)",
    "sync": "sync",
}
WITH_DIRECTORY = ("metadata", "async", "sync")


class GeneratedWords(InputDStream):
    """`words` seeded-random words over `keys` keys per batch (replayable: seeded by batch time)."""

    def __init__(self, ssc: Any, words: int, keys: int) -> None:
        super().__init__(ssc)
        self._words, self._keys = words, keys

    def _compute(self, time_ms: int) -> Any:
        rng = random.Random(time_ms)
        data = [f"k{rng.randrange(self._keys)}" for _ in range(self._words)]
        self._records_per_batch[time_ms] = len(data)
        return self._sc.parallelize(data, 4)


def running_count(values: list[int], state: int | None) -> int:
    return sum(values) + (state or 0)


@dataclass
class Figures:
    """Per-batch latency and processing time (ms) of one case, over all its rounds."""

    latency_ms: list[int] = field(default_factory=list)
    processing_ms: list[int] = field(default_factory=list)


class BatchTimes(StreamingListener):
    def __init__(self) -> None:
        self.figures = Figures()
        self.completed = 0

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        info = batchCompleted.batchInfo()
        self.completed += 1
        if self.completed <= WARMUP_BATCHES or info.processingEndTime() is None:
            return
        self.figures.latency_ms.append(info.processingEndTime() - info.batchTime().milliseconds())
        self.figures.processing_ms.append(info.processingDelay())


def every_nth(n: int, action: Callable[[Any], None]) -> Callable[[Any], None]:
    """A foreachRDD function that applies `action` to every n-th RDD (the checkpoint interval)."""
    seen = [0]

    def apply(rdd: Any) -> None:
        seen[0] += 1
        if seen[0] % n == 0:
            action(rdd)

    return apply


def build(ssc: StreamingContext, args: argparse.Namespace, mode: str) -> None:
    pairs = GeneratedWords(ssc, args.words, args.keys).map(lambda w: (w, 1))
    state = pairs.updateStateByKey(running_count, 4)
    if mode in ("async", "sync"):
        state.checkpoint(args.interval_batches * args.batch_ms / 1000)
    else:
        # Spark (and dstream) insist that a state stream is checkpointed; the baselines lift the
        # requirement on this one stream.
        state._must_checkpoint = False
    if mode in ("none", "metadata"):
        # Registered first, so it marks the state RDD before the count job computes it; that job
        # then cuts the lineage to the cached blocks.
        state.foreachRDD(every_nth(args.interval_batches, lambda rdd: rdd.localCheckpoint()))
    state.count().foreachRDD(lambda rdd: rdd.collect())


@contextmanager
def object_store(kind: str, workdir: Path) -> Iterator[Callable[[], tuple[str, dict[str, Any]]]]:
    """Yields a function that makes a fresh checkpoint URL (and its storage options) on the store."""
    from tests.support.s3servers import MotoServer, SeaweedServer, make_bucket, s3_options

    server: Any = SeaweedServer(workdir / "weed") if kind == "seaweedfs" else MotoServer()
    try:
        yield lambda: (f"s3://{make_bucket(server.endpoint)}/app", s3_options(server.endpoint))
    finally:
        server.stop()


def run_case(mode: str, args: argparse.Namespace, where: tuple[str, dict[str, Any]] | None) -> Figures:
    conf = Conf().setMaster("local[2]").setAppName(f"bench-{mode}")
    conf.set("dstream.checkpoint.async", "false" if mode == "sync" else "true")
    sc = Context(conf=conf)
    with tempfile.TemporaryDirectory() as tmp:
        ssc = StreamingContext(sc, args.batch_ms / 1000)
        if mode in WITH_DIRECTORY:
            url, options = where if where is not None else (tmp, {})
            ssc.checkpoint(url, **options)
        build(ssc, args, mode)
        times = BatchTimes()
        ssc.addStreamingListener(times)
        ssc.start()
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while times.completed < args.batches + WARMUP_BATCHES and time.monotonic() < deadline:
            ssc.awaitTerminationOrTimeout(args.batch_ms / 1000)
        ssc.stop(stopSparkContext=True)
    return times.figures


def summary(values: list[int]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"{statistics.median(ordered):5.0f} {statistics.mean(ordered):5.0f} {p90:5d} {ordered[-1]:5d}"


def report(results: dict[tuple[str, str], Figures], args: argparse.Namespace) -> None:
    print(
        f"stateful word count, {args.words} words/batch over {args.keys} keys, {args.batch_ms} ms batches, "
        f"data checkpoint every {args.interval_batches} batches, {args.rounds} rounds x {args.batches} "
        "batches per case (ms: median mean p90 max)"
    )
    print(f"  {'case':44s} {'latency':>23s}   {'processing time':>23s}")
    for (store, mode), figures in results.items():
        label = f"{MODE_LABELS[mode]}" + (f" [{store}]" if mode in WITH_DIRECTORY else "")
        print(f"  {label:44s} {summary(figures.latency_ms)}   {summary(figures.processing_ms)}")
    base = results[("local", "none")]
    for (store, mode), figures in results.items():
        if mode in WITH_DIRECTORY:
            ratios = [
                stat(getattr(figures, kind)) / stat(getattr(base, kind))
                for kind in ("latency_ms", "processing_ms")
                for stat in (statistics.median, statistics.mean)
            ]
            print(
                f"  {mode} [{store}] / none, localCheckpoint (median, mean): latency {ratios[0]:.2f}x "
                f"{ratios[1]:.2f}x, processing {ratios[2]:.2f}x {ratios[3]:.2f}x"
            )


# -- recovery --------------------------------------------------------------------------------------


def child_main(ckpt: str, out: str, ready: str, batch_ms: int) -> None:
    def setup() -> StreamingContext:
        sc = Context.getOrCreate(Conf().setMaster("local[2]").setAppName("bench-recovery"))
        ssc = StreamingContext(sc, batch_ms / 1000)
        ssc.checkpoint(ckpt)
        pairs = GeneratedWords(ssc, 2000, 500).map(lambda w: (w, 1))
        pairs.updateStateByKey(running_count, 2).checkpoint(2 * batch_ms / 1000).saveAsTextFiles(out)
        return ssc

    ssc = StreamingContext.getOrCreate(ckpt, setup)
    ssc.start()
    Path(ready, str(os.getpid())).write_text("started")
    sys.stdin.read()


def committed_outputs(out_dir: Path) -> set[str]:
    return {d.name for d in out_dir.iterdir() if (d / "_SUCCESS").exists()}


def wait_for(predicate: Any, timeout_s: float, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        try:
            proc.wait(timeout=0.01)
        except subprocess.TimeoutExpired:
            pass
    return False


def measure_recovery(batch_ms: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out_dir, ready = root / "out", root / "ready"
        out_dir.mkdir()
        ready.mkdir()
        child_args = [str(root / "ckpt"), str(out_dir / "wc"), str(ready), str(batch_ms)]
        cmd = [sys.executable, __file__, "--child", *child_args]
        first = subprocess.Popen(cmd, stdin=subprocess.PIPE)
        assert wait_for(lambda: len(committed_outputs(out_dir)) >= 5, 120, first), "child produced no output"
        first.kill()
        killed_at = time.monotonic()
        first.wait()
        before = committed_outputs(out_dir)
        second = subprocess.Popen(cmd, stdin=subprocess.PIPE)
        try:
            assert wait_for(lambda: committed_outputs(out_dir) - before, 120, second), (
                "no batch after restart"
            )
            return time.monotonic() - killed_at
        finally:
            second.kill()
            second.wait()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=25, help="measured batches per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-ms", type=int, default=200)
    parser.add_argument("--interval-batches", type=int, default=2)
    parser.add_argument("--words", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=5_000)
    parser.add_argument("--store", choices=("none", "seaweedfs", "moto"), default="seaweedfs")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of MODES")
    parser.add_argument("--no-recovery", action="store_true")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if "none" not in modes:
        modes.insert(0, "none")  # the baseline every ratio is relative to
    cases = [("local", m) for m in modes]
    if args.store != "none":
        cases += [(args.store, m) for m in modes if m in WITH_DIRECTORY]
    results: dict[tuple[str, str], Figures] = {case: Figures() for case in cases}
    with tempfile.TemporaryDirectory() as work:
        stores = object_store(args.store, Path(work)) if args.store != "none" else None
        with stores if stores is not None else _nothing() as new_location:
            for _ in range(args.rounds):
                for store, mode in cases:
                    where = new_location() if store != "local" else None
                    got = run_case(mode, args, where)
                    results[(store, mode)].latency_ms.extend(got.latency_ms)
                    results[(store, mode)].processing_ms.extend(got.processing_ms)
    report(results, args)
    if not args.no_recovery:
        recovery_s = measure_recovery(args.batch_ms)
        print(f"recovery: SIGKILL -> first batch completed after restart: {recovery_s:.2f} s")


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
