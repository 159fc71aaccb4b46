"""Word count throughput: the highest sustainable input rate at 1 s batches, against a plain loop.

For stateless (flatMap/map/reduceByKey) and stateful (+ updateStateByKey with checkpointing) word
count over lines of 10 words from a 10k-word vocabulary, this finds the highest input rate (lines
per second) at which the median batch processing time stays under the batch interval, running real
1 s batches on the system clock. The baseline, measured in the same run on the same lines, is a
plain single-process Python loop doing the same split/count. Prints both and their ratio.

The plain loop is measured again before every probe, on as many lines as one batch of that probe
(a loop over 100k lines runs about 9 % faster per line than over 500k, so a smaller sample would
flatter the baseline), because the machine's speed drifts by tens of percent between runs; ratios
use the median of those measurements. It is measured after each probe too: a probe with the loop
under 80 % of its best on either side ran in a slow phase of the machine and is made again, and so
is a probe over the interval, the better of the two counting (three times at most per search;
`LoopWatch`, `RateSearch`). `--switch-interval-ms` sets Python's
GIL switch interval for the run (default: Python's 5 ms) to show what GIL hand-offs between the
local backend's worker threads cost.

Any master works (`--master local-cluster[2]` runs the tasks on an embedded Dask cluster).
`--compare` runs several masters in the same run (default `local[1]` and `local-cluster[2]`), their
in-memory searches taking turns probe by probe (this machine's speed drifts by tens of percent over
minutes: one master's whole search before the other's compared two different machines), and prints,
per master: each pipeline's sustainable rate, its ratio to the plain loop and to the first master, the
start-up time (median of 3 fresh processes, from the launch to the first completed batch), the peak
RSS of all processes (driver and workers, sampled every 100 ms with psutil, else /proc) of a stateful
word count at 20,000 lines/s in a fresh process, and the peak RSS during the rate search. With `--sources`
(default `memory socket push`) it also searches, per master, for the sustainable end-to-end rate of
the same word count fed by a real receiver: a socket, and a push stream with the receiver WAL on
(bench/e2e_sources.py, each probe in a fresh process).

Run: `.venv/bin/python bench/wordcount.py [--master local[*]] [--batches 6] [--quick]
[--switch-interval-ms 50] [--compare [--masters local[1] local-cluster[2]]]`. The search is bounded: at
most `PROBES_MAX` rates per pipeline, `batches` batches each.

Two source trees, alternated (`--trees old=/tmp/old new=. --rounds 5 --rate 150000`): every
measurement runs in a fresh process importing the dstream of one tree, at a fixed rate (the
sustainable-rate search is too noisy to tell a few percent apart on a loaded machine), for both
pipelines on each of `--masters`; the trees alternate in ABBA order within each round. Two figures
per measurement: the median batch processing time (wall clock), and the process's CPU time per batch
(`time.process_time()` between batch completions, all threads), which other processes on a shared
machine disturb far less. Per round the ratio is old / new (above 1: new is faster, a throughput
ratio); medians over rounds are printed.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# This directory holds wal.py and checkpoint.py, which would shadow the packages of the same names.
# A child measuring another tree (`--tree PATH`) imports that tree's packages instead.
sys.path.insert(
    0,
    sys.argv[sys.argv.index("--tree") + 1]
    if "--tree" in sys.argv
    else str(Path(__file__).resolve().parent.parent),
)

import e2e_sources
from rate_search import next_rate

from dstream import Context, StreamingContext
from dstream.streaming.inputs import InputDStream
from dstream.streaming.listener import StreamingListener

VOCABULARY = 10_000
WORDS_PER_LINE = 10
POOL_LINES = 1_000_000
PROBES_MAX = 6
BATCH_S = 1.0
WAIT_S = 120.0

_POOL: list[str] = []


def line_pool(lines: int = POOL_LINES) -> list[str]:
    if not _POOL:
        rng = random.Random(42)
        words = [f"w{i}" for i in range(VOCABULARY)]
        _POOL.extend(" ".join(rng.choices(words, k=WORDS_PER_LINE)) for _ in range(lines))
    return _POOL


def plain_loop_rate(lines: list[str], repeats: int = 3) -> float:
    """Lines per second of the plain loop (best of `repeats`)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        counts: dict[str, int] = {}
        for line in lines:
            for word in line.split():
                counts[word] = counts.get(word, 0) + 1
        best = min(best, time.perf_counter() - start)
    return len(lines) / best


class PoolStream(InputDStream):
    """`rate` lines per batch from the in-memory pool, in defaultParallelism partitions."""

    def __init__(self, ssc: Any, rate: int) -> None:
        super().__init__(ssc)
        self._rate = rate
        self._offset = 0

    def __getstate__(self) -> dict[str, Any]:
        return super().__getstate__()  # the pool is module state, never pickled

    def _compute(self, time_ms: int) -> Any:
        pool = line_pool()
        start = self._offset % (len(pool) - self._rate)
        self._offset += self._rate
        lines = pool[start : start + self._rate]
        parts = self._sc.defaultParallelism
        n = len(lines)
        self._records_per_batch[time_ms] = n
        return self._sc._rdd_from_partitions(
            [lines[i * n // parts : (i + 1) * n // parts] for i in range(parts)]
        )


class Timings(StreamingListener):
    def __init__(self, batches: int) -> None:
        self.processing_ms: list[int] = []
        self.cpu_s: list[float] = []  # the process's CPU time at each batch's completion
        self.done = threading.Event()
        self.first_completed_at = 0.0  # wall clock
        self._batches = batches

    def onBatchCompleted(self, batchCompleted: Any) -> None:
        if not self.cpu_s:
            self.first_completed_at = time.time()
        self.cpu_s.append(time.process_time())
        delay = batchCompleted.batchInfo().processingDelay()
        if delay is not None:
            self.processing_ms.append(delay)
        if len(self.processing_ms) >= self._batches:
            self.done.set()


def _add_state(values: list[int], state: int | None) -> int:
    return sum(values, state or 0)


def _rss_tree_bytes() -> int:
    """RSS of this process and all its descendants (psutil, else /proc)."""
    try:
        import psutil

        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total
    except ImportError:
        return _proc_rss_tree(os.getpid())


def _proc_rss_tree(root: int) -> int:
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        rss[int(entry)] = int(fields[21]) * page
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(p, 0) for p in tree)


class PeakRss:
    """Samples the RSS of this process tree every 100 ms while in use; `peak` is the highest seen."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, _rss_tree_bytes())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def median_processing_ms(master: str, rate: int, stateful: bool, batches: int) -> float:
    """Run `batches` real 1 s batches at `rate` lines/s; median processing time, first batch dropped."""
    return statistics.median(run_batches(master, rate, stateful, batches).processing_ms[1:])


def run_batches(master: str, rate: int, stateful: bool, batches: int) -> Timings:
    """Run `batches` + 1 real 1 s batches at `rate` lines/s; their timings."""
    sc = Context(master, appName="bench-wordcount")
    ssc = StreamingContext(sc, BATCH_S)
    with tempfile.TemporaryDirectory(prefix="bench-wc-") as ckpt:
        counts = PoolStream(ssc, rate).flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(operator.add)
        if stateful:
            ssc.checkpoint(ckpt)
            counts = counts.updateStateByKey(_add_state)
        counts.foreachRDD(lambda rdd: rdd.count())
        timings = Timings(batches + 1)
        ssc.addStreamingListener(timings)
        ssc.start()
        try:
            if not timings.done.wait(WAIT_S):
                raise TimeoutError(f"{batches} batches at rate {rate} did not finish in {WAIT_S}s")
        finally:
            ssc.stop(stopSparkContext=True)
    return timings


class LoopWatch:
    """The plain loop's best rate so far in this run, shared by the searches that take turns: a loop
    measurement under `STEADY_FRACTION` of it says the machine is in one of its slow phases (this VM's
    speed moves by half for minutes at a time, and a probe made then misplaces the search for good: an
    "over" bounds every later probe)."""

    def __init__(self) -> None:
        self.best = 0.0

    def measure(self, lines: list[str]) -> tuple[float, bool]:
        """(the loop's rate on `lines`, whether the machine runs at its usual speed)."""
        rate = plain_loop_rate(lines, repeats=2)
        self.best = max(self.best, rate)
        return rate, rate >= STEADY_FRACTION * self.best


STEADY_FRACTION = 0.8
STEADY_TRIES = 3  # loop measurements before a probe, waiting for a slow phase to pass
REPROBES_MAX = 3  # probes of a search made again (the machine was slow around them, or it was over)


class RateSearch:
    """One master's search for its highest sustainable rate (the median processing time of a probe under
    the batch interval), a probe at a time, so that the searches of several masters can take turns and
    see the same minutes of a machine whose speed drifts (`compare`).

    Around each probe the plain loop is measured on one batch's worth of lines (`LoopWatch`): before
    (appended to `loop_rates`; measured again, up to `STEADY_TRIES` times, while the machine is slow)
    and after. A probe with a slow measurement on either side is made again, and so is a probe over the
    interval, the better of its two medians counting (one slow probe bounds every later one, and this
    machine gives single probes 30 % slower than the next at a lower rate without its loop slowing):
    up to `REPROBES_MAX` times in a search, and the log says so. `peak_rss` is the highest RSS of this
    process tree seen during a probe.
    """

    def __init__(
        self, master: str, stateful: bool, batches: int, start_rate: int, watch: LoopWatch | None = None
    ) -> None:
        self.master, self.stateful, self.batches = master, stateful, batches
        self.rate, self.best, self.over = start_rate, 0, POOL_LINES
        self.watch = watch or LoopWatch()
        self.log: list[str] = []
        self.loop_rates: list[float] = []
        self.peak_rss = 0
        self.probes = 0
        self.reprobes = 0
        self._first_over: dict[int, float] = {}  # rate -> its first probe's median, when over
        self.done = False

    def step(self) -> None:
        """Probe the current rate and choose the next one (or finish)."""
        lines = line_pool()[: self.rate]
        loop, steady = self.watch.measure(lines)
        for _ in range(STEADY_TRIES - 1):
            if steady:
                break
            loop, steady = self.watch.measure(lines)
        with PeakRss() as rss:
            ms = median_processing_ms(self.master, self.rate, self.stateful, self.batches)
        after, steady_after = self.watch.measure(lines)
        self.peak_rss = max(self.peak_rss, rss.peak)
        loops = f"loop {loop:,.0f} / {after:,.0f}"
        if not (steady and steady_after) and self.reprobes < REPROBES_MAX:
            self.reprobes += 1
            self.log.append(
                f"  rate {self.rate:>9,} lines/s -> median {ms:7.1f} ms, {loops}: the machine"
                f" was slow (its best loop {self.watch.best:,.0f}), probed again"
            )
            return
        ok = ms < BATCH_S * 1000
        if not ok and self.rate not in self._first_over and self.reprobes < REPROBES_MAX:
            self.reprobes += 1
            self._first_over[self.rate] = ms
            self.log.append(
                f"  rate {self.rate:>9,} lines/s -> median {ms:7.1f} ms over; {loops}; probed again"
            )
            return
        if self.rate in self._first_over:  # the second probe of an over: the better of the two
            ms = min(ms, self._first_over[self.rate])
            ok = ms < BATCH_S * 1000
        self.loop_rates.append(loop)
        self.probes += 1
        verdict = "ok" if ok else "over"
        self.log.append(f"  rate {self.rate:>9,} lines/s -> median {ms:7.1f} ms {verdict}; {loops}")
        if ok:
            self.best = max(self.best, self.rate)
        else:
            self.over = min(self.over, self.rate)
        target = next_rate(self.rate, ms, self.best, self.over, BATCH_S, POOL_LINES - 1)
        if target is None or int(target) == self.rate or self.probes >= PROBES_MAX:
            self.done = True
        else:
            self.rate = int(target)


def sustainable_rate(
    master: str, stateful: bool, batches: int, start_rate: int, loop_rates: list[float]
) -> tuple[int, list[str]]:
    """Highest probed rate whose median processing time is under the batch interval (`RateSearch`);
    appends the plain-loop measurements to `loop_rates`."""
    search = RateSearch(master, stateful, batches, start_rate)
    while not search.done:
        search.step()
    loop_rates.extend(search.loop_rates)
    return search.best, search.log


def interleaved_searches(
    masters: list[str], stateful: bool, batches: int, start_rate: int
) -> list[RateSearch]:
    """The searches of every master, taking turns probe by probe until all are done."""
    watch = LoopWatch()
    searches = [RateSearch(m, stateful, batches, start_rate, watch) for m in masters]
    while not all(s.done for s in searches):
        for search in (s for s in searches if not s.done):
            search.step()
    return searches


STARTUP_RATE = 10_000


def startup_child(master: str) -> None:
    """In a fresh process: the wall-clock times of `ssc.start()` returning and of the first completed
    batch (the parent knows when it launched this process)."""
    line_pool(2 * STARTUP_RATE)  # a small pool: the start-up measured is the engine's, not the data's
    sc = Context(master, appName="bench-startup")
    ssc = StreamingContext(sc, BATCH_S)
    counts = PoolStream(ssc, STARTUP_RATE).flatMap(str.split).map(lambda w: (w, 1))
    counts.reduceByKey(operator.add).foreachRDD(lambda rdd: rdd.count())
    timings = Timings(1)
    ssc.addStreamingListener(timings)
    ssc.start()
    started = time.time()
    try:
        if not timings.done.wait(WAIT_S):
            raise TimeoutError(f"no batch completed in {WAIT_S}s")
        print(f"first_batch_at {timings.first_completed_at:.6f}\nstarted_at {started:.6f}", flush=True)
    finally:
        ssc.stop(stopSparkContext=True)


STARTUP_RUNS = 3


def _child_figures(args: list[str]) -> dict[str, float]:
    """Run this script in a new interpreter with `args`; its "name value" lines, and "launched": the
    wall-clock time just before the launch (a child's own process start time, from psutil, is
    derived from the boot time in whole seconds and was 0.7 s early on this machine)."""
    launched = time.time()
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, timeout=WAIT_S + 60, check=True
    ).stdout
    figures = {"launched": launched}
    for line in out.splitlines():
        name, _, value = line.partition(" ")
        if name.endswith(("_at", "_mb")):
            figures[name] = float(value)
    return figures


def startup_s(master: str) -> tuple[float, float]:
    """Median over `STARTUP_RUNS` new interpreters running `startup_child` (the start-up a user sees):
    (seconds from launch to the first completed batch, seconds from launch to `ssc.start()` returning).

    The difference is mostly the wait for the first batch time, the next multiple of the batch interval
    after the start (as in Spark), so anywhere from 0 to 1 s with 1 s batches."""
    firsts, starts = [], []
    for _ in range(STARTUP_RUNS):
        figures = _child_figures(["--startup-child", master])
        firsts.append(figures["first_batch_at"] - figures["launched"])
        starts.append(figures["started_at"] - figures["launched"])
    return statistics.median(firsts), statistics.median(starts)


RSS_RATE = 20_000
RSS_BATCHES = 10


def rss_mb(master: str) -> float:
    """Peak RSS of all processes of a stateful word count at `RSS_RATE` lines/s (`rss_child`), in MB."""
    return _child_figures(["--rss-child", master])["peak_rss_mb"]


def rss_child(master: str) -> None:
    """In a fresh process: the peak RSS of this process and its children (the embedded cluster's
    workers) over `RSS_BATCHES` batches of a checkpointed stateful word count at `RSS_RATE` lines/s."""
    line_pool(4 * RSS_RATE)  # a small pool: what is measured is the engine's memory, not the data's
    with PeakRss() as rss:
        run_batches(master, RSS_RATE, True, RSS_BATCHES)
    print(f"peak_rss_mb {rss.peak / 2**20:.1f}", flush=True)


def compare(
    masters: list[str],
    batches: int,
    first_guess: float,
    sources: list[str],
    window_s: float,
    unallocated_max: int,
) -> None:
    """Every master in the same run: rates, ratios to the plain loop and to the first master, start-up,
    peak RSS; then, for each receiver source in `sources`, the end-to-end rate (bench/e2e_sources.py)."""
    results: dict[str, dict[str, float]] = {}
    for master in masters:
        startup, started = startup_s(master)
        results[master] = {"startup_s": startup, "started_s": started, "rss_20k_mb": rss_mb(master)}
    if "memory" in sources:
        for stateful in (False, True):
            name = "stateful" if stateful else "stateless"
            for search in interleaved_searches(masters, stateful, batches, int(first_guess * 0.4)):
                print(f"{search.master} {name}:\n" + "\n".join(search.log), flush=True)
                row = results[search.master]
                row[name] = search.best
                row[f"{name}_loop"] = statistics.median(search.loop_rates)
                row["search_peak_rss_mb"] = max(row.get("search_peak_rss_mb", 0), search.peak_rss / 2**20)
    for master in masters:
        row = results[master]
        for source in (s for s in sources if s != "memory"):
            for stateful in (False, True):
                name = f"{source} {'stateful' if stateful else 'stateless'}"
                figures, log = e2e_sources.sustainable(master, source, stateful, window_s, unallocated_max)
                row[name], row[name + " ms"] = figures["lines_per_s"], figures["processing_ms"]
                print(f"{master} {name}, end to end:\n" + "\n".join(log), flush=True)
    base = results[masters[0]]
    if "memory" in sources:
        print(f"\n{'master':<18} {'pipeline':<10} {'lines/s':>10} {'/loop':>6} {'/' + masters[0]:>12}")
        for master, row in results.items():
            for name in ("stateless", "stateful"):
                print(
                    f"{master:<18} {name:<10} {row[name]:>10,.0f} {row[name] / row[name + '_loop']:>6.2f}"
                    f" {row[name] / max(base[name], 1):>12.2f}"
                )
    e2e = [f"{s} {k}" for s in sources if s != "memory" for k in ("stateless", "stateful")]
    if e2e:
        header = f"{'source, pipeline':<18} {'lines/s':>10} {'processing':>11} {'/' + masters[0]:>12}"
        print(f"\n{'master':<18} {header}")
        for master, row in results.items():
            for name in e2e:
                print(
                    f"{master:<18} {name:<18} {row[name]:>10,.0f} {row[name + ' ms']:>8.0f} ms"
                    f" {row[name] / max(base[name], 1):>12.2f}"
                )
    print(
        f"\n{'master':<18} {'start-up':>9} {'started':>8} {'peak RSS, stateful at 20k lines/s':>34}"
        f" {'peak RSS, rate search':>22}"
    )
    for master, row in results.items():
        search = f"{row['search_peak_rss_mb']:.0f} MB" if "search_peak_rss_mb" in row else "-"
        print(
            f"{master:<18} {row['startup_s']:>7.2f} s {row['started_s']:>6.2f} s"
            f" {row['rss_20k_mb']:>31.0f} MB {search:>22}"
        )
    print(
        f"(start-up: launch to first completed batch, median of {STARTUP_RUNS} fresh processes; started:"
        " launch to ssc.start() returning; the rest is the wait for the first batch time)"
    )


CHILD_TIMEOUT_S = 300.0


def child_main(args: argparse.Namespace) -> None:
    """One fixed-rate measurement in this process (`--tree` chose the dstream it imports)."""
    global POOL_LINES
    POOL_LINES = min(POOL_LINES, args.rate * (args.batches + 3))  # no more lines than it reads
    timings = run_batches(args.master, args.rate, args.stateful, args.batches)
    ms = statistics.median(timings.processing_ms[1:])
    cpu = timings.cpu_s
    cpu_ms = (cpu[-1] - cpu[0]) * 1000 / (len(cpu) - 1)  # per batch, after the first one
    import dstream

    where = str(Path(dstream.__file__).resolve().parent.parent)
    print(json.dumps({"ms": ms, "cpu_ms": cpu_ms, "dstream": where}))


def measure(tree: str, master: str, rate: int, stateful: bool, batches: int) -> tuple[float, float]:
    """(median processing ms, CPU ms per batch) of one child measuring `tree`."""
    cmd = [sys.executable, __file__, "--child", "--tree", str(Path(tree).resolve()), "--master", master]
    cmd += ["--rate", str(rate), "--batches", str(batches)] + (["--stateful"] if stateful else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measurement {cmd} failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["dstream"] != str(Path(tree).resolve()):
        raise RuntimeError(f"the child imported dstream from {result['dstream']}, not {tree}")
    return float(result["ms"]), float(result["cpu_ms"])


def compare_trees(args: argparse.Namespace) -> None:
    trees = dict(t.split("=", 1) for t in args.trees)
    if len(trees) != 2:
        raise SystemExit(f"--trees takes two name=path pairs, got {args.trees}")
    (old, old_path), (new, new_path) = trees.items()
    print(f"{old}={old_path} vs {new}={new_path}: {args.rounds} rounds, {args.rate:,} lines/s, 1 s batches")
    for master in args.masters:
        for stateful in (False, True):
            name = f"{master} {'stateful' if stateful else 'stateless'}"
            wall: dict[str, list[float]] = {old: [], new: []}
            cpu: dict[str, list[float]] = {old: [], new: []}
            for r in range(args.rounds):
                order = [(old, old_path), (new, new_path)]
                for tree_name, path in order if r % 2 == 0 else order[::-1]:
                    ms, cpu_ms = measure(path, master, args.rate, stateful, args.batches)
                    wall[tree_name].append(ms)
                    cpu[tree_name].append(cpu_ms)
                print(
                    f"  {name} round {r + 1}: processing {old} {wall[old][-1]:.0f} ms, {new} "
                    f"{wall[new][-1]:.0f} ms; CPU per batch {old} {cpu[old][-1]:.0f} ms, "
                    f"{new} {cpu[new][-1]:.0f} ms",
                    flush=True,
                )
            for label, values in (("processing time", wall), ("CPU per batch", cpu)):
                ratios = [o / n for o, n in zip(values[old], values[new], strict=True)]
                print(
                    f"{name}, {label}: median {old} {statistics.median(values[old]):.0f} ms, {new} "
                    f"{statistics.median(values[new]):.0f} ms; median ratio {new}/{old} (throughput) "
                    f"{statistics.median(ratios):.3f}; per round {', '.join(f'{x:.2f}' for x in ratios)}",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--compare", action="store_true", help="run every --masters in the same run")
    parser.add_argument("--startup-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--trees", nargs="*", help="two name=path source trees to alternate")
    parser.add_argument(
        "--masters",
        nargs="*",
        default=None,
        help="default: local[1] local-cluster[2] with --compare, local[1] local[*] with --trees",
    )
    parser.add_argument(
        "--sources",
        nargs="*",
        choices=("memory", "socket", "push"),
        default=["memory", "socket", "push"],
        help="with --compare: the in-memory source's sustainable rate, and end-to-end receiver rates",
    )
    parser.add_argument(
        "--e2e-window-s", type=float, default=8.0, help="with --compare and a receiver source"
    )
    parser.add_argument(
        "--e2e-unallocated-max",
        type=int,
        default=e2e_sources.UNALLOCATED_MAX,
        help="each receiver's dstream.receiver.unallocated_records_max in the end-to-end runs",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=int, default=150_000, help="lines/s, with --trees")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--stateful", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="3 batches per probe")
    parser.add_argument("--switch-interval-ms", type=float, default=None, help="sys.setswitchinterval")
    args = parser.parse_args()
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    if args.startup_child is not None:
        startup_child(args.startup_child)
        return
    if args.rss_child is not None:
        rss_child(args.rss_child)
        return
    if args.child:
        child_main(args)
        return
    if args.trees:
        args.masters = args.masters or ["local[1]", "local[*]"]
        compare_trees(args)
        return
    batches = 3 if args.quick else args.batches
    first_guess = plain_loop_rate(line_pool()[:200_000])
    if args.compare:
        args.masters = args.masters or ["local[1]", "local-cluster[2]"]
        print(f"{BATCH_S:g} s batches; masters {args.masters}; plain loop first guess {first_guess:,.0f}")
        print(f"end-to-end runs: unallocated records per receiver at most {args.e2e_unallocated_max:,}")
        compare(args.masters, batches, first_guess, args.sources, args.e2e_window_s, args.e2e_unallocated_max)
        return
    switch_ms = sys.getswitchinterval() * 1000
    print(f"master {args.master}, {BATCH_S:g} s batches, GIL switch interval {switch_ms:g} ms")
    for stateful in (False, True):
        name = "stateful (updateStateByKey)" if stateful else "stateless"
        start = int(first_guess * 0.4)
        loop_rates: list[float] = []
        best, log = sustainable_rate(args.master, stateful, batches, start, loop_rates)
        loop_rate = statistics.median(loop_rates)
        print(f"{name}:")
        print("\n".join(log))
        print(
            f"  highest sustainable rate: {best:,} lines/s; plain loop (median of {len(loop_rates)}): "
            f"{loop_rate:,.0f} lines/s; ratio: {best / loop_rate:.2f}"
        )


if __name__ == "__main__":
    # Run from the module imported by name: classes defined in __main__ are pickled by value with the
    # globals they reach, which would put the whole line pool into every metadata checkpoint.
    import wordcount

    wordcount.main()
