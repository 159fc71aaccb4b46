"""Checkpoint benchmark: a stateful word count with async, sync and no data checkpoints; recovery time.

Each mode runs the same pipeline on real time (SystemClock, `--batch-ms` batches): a generated input
of `--words` words per batch over `--keys` keys -> updateStateByKey (data-checkpointed every
`--interval-batches` batches) -> count. Per batch the total delay (batch time to end of its job, as
the listener bus reports it) is recorded; the table gives median, p90 and max. "none" has no
checkpoint directory at all (no metadata checkpoints either); "async" and "sync" differ only in
`dstream.checkpoint.async`. Modes alternate in rounds so that load from other processes hits all alike.

Recovery: a child process runs the pipeline with a checkpoint directory and writes one output
directory per batch; it is SIGKILLed, restarted with getOrCreate, and the time from the kill to the
first output directory written after the restart is reported (process start and imports included).

    .venv/bin/python bench/checkpoint.py [--batches 30] [--rounds 2] [--batch-ms 200]
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dstream.context import Conf, Context
from dstream.streaming import StreamingContext
from dstream.streaming.inputs import InputDStream
from dstream.streaming.listener import StreamingListener

RUN_TIMEOUT_S = 300.0


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


class Delays(StreamingListener):
    def __init__(self) -> None:
        self.total_ms: list[int] = []

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        delay = batchCompleted.batchInfo.totalDelay
        if delay is not None:
            self.total_ms.append(delay)


def build(ssc: StreamingContext, args: argparse.Namespace, checkpointed: bool) -> None:
    pairs = GeneratedWords(ssc, args.words, args.keys).map(lambda w: (w, 1))
    state = pairs.updateStateByKey(running_count, 4)
    if checkpointed:
        state.checkpoint(args.interval_batches * args.batch_ms / 1000)
    else:
        # The baseline without any checkpoint: Spark (and dstream) insist that a state stream is
        # checkpointed, so the bench lifts the requirement on this one stream (its lineage grows,
        # which a run of this length does not notice).
        state._must_checkpoint = False
    state.count().foreachRDD(lambda rdd: rdd.collect())


def run_mode(mode: str, args: argparse.Namespace) -> list[int]:
    conf = Conf().setMaster("local[2]").setAppName(f"bench-{mode}")
    conf.set("dstream.checkpoint.async", "false" if mode == "sync" else "true")
    sc = Context(conf=conf)
    with tempfile.TemporaryDirectory() as tmp:
        ssc = StreamingContext(sc, args.batch_ms / 1000)
        if mode != "none":
            ssc.checkpoint(tmp)
        build(ssc, args, mode != "none")
        delays = Delays()
        ssc.addStreamingListener(delays)
        ssc.start()
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while len(delays.total_ms) < args.batches + 2 and time.monotonic() < deadline:
            ssc.awaitTerminationOrTimeout(args.batch_ms / 1000)
        ssc.stop(stopSparkContext=True)
    return delays.total_ms[2:]  # the first batches warm up


def summary(values: list[int]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return (
        f"median {statistics.median(ordered):.0f} ms, p90 {p90} ms, max {ordered[-1]} ms (n={len(ordered)})"
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
    parser.add_argument("--batches", type=int, default=30, help="measured batches per mode and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-ms", type=int, default=200)
    parser.add_argument("--interval-batches", type=int, default=2)
    parser.add_argument("--words", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=5_000)
    args = parser.parse_args()
    results: dict[str, list[int]] = {"none": [], "async": [], "sync": []}
    for _ in range(args.rounds):
        for mode in results:
            results[mode].extend(run_mode(mode, args))
    print(
        f"stateful word count, {args.words} words/batch over {args.keys} keys, {args.batch_ms} ms batches, "
        f"data checkpoint every {args.interval_batches} batches; total delay per batch:"
    )
    for mode, values in results.items():
        print(f"  {mode:5s}: {summary(values)}")
    base = statistics.median(results["none"])
    for mode in ("async", "sync"):
        print(f"  {mode} / none (median): {statistics.median(results[mode]) / base:.2f}x")
    print(
        f"recovery: SIGKILL -> first batch completed after restart: {measure_recovery(args.batch_ms):.2f} s"
    )


if __name__ == "__main__":
    main()
