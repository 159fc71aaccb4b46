"""Word-count throughput of the engine against a plain single-process Python loop (DESIGN.md section 8).

Run: ``.venv/bin/python -m tests.engine.bench_wordcount [lines] [master]``. Prints both rates and
their ratio; the target is an engine rate of at least 0.5x the loop's on local[*]. Not a test: no
timing is asserted anywhere.
"""

from __future__ import annotations

import operator
import random
import sys
import time

from dstream import Context


def make_lines(n_lines: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)]
    return [" ".join(rng.choices(vocab, k=10)) for _ in range(n_lines)]


def plain_loop(lines: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in lines:
        for w in line.split():
            counts[w] = counts.get(w, 0) + 1
    return counts


def engine(sc: Context, lines: list[str]) -> dict[str, int]:
    rdd = sc.parallelize(lines, sc.defaultParallelism * 2)
    return dict(rdd.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(operator.add).collect())


def best_of(runs: int, fn, *args):  # type: ignore[no-untyped-def]
    """Best wall time and best CPU time (the latter is steadier on a shared machine)."""
    best_wall, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn(*args)
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu, result


def main() -> None:
    n_lines = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    master = sys.argv[2] if len(sys.argv) > 2 else "local[*]"
    lines = make_lines(n_lines)
    t_loop, c_loop, expected = best_of(5, plain_loop, lines)
    with Context(master) as sc:
        t_engine, c_engine, got = best_of(5, engine, sc, lines)
    assert got == expected, "engine and loop disagree"
    print(f"lines={n_lines} master={master}")
    print(f"plain loop: {n_lines / t_loop:,.0f} lines/s")
    print(f"engine:     {n_lines / t_engine:,.0f} lines/s")
    print(f"ratio engine/loop: wall {t_loop / t_engine:.2f}, cpu {c_loop / c_engine:.2f}")


if __name__ == "__main__":
    main()
