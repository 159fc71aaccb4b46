"""Checker speed: `chaos.checker.check` on a run of N records, against a baseline in the same run.

The baseline is the least any checker must do: count the committed ids with a Counter and look each up
in a dict of the sends. Prints both times and their ratio for each pipeline; the checker is meant to
stay within a small multiple of the baseline (pure dict and Counter work), so that 1e5 records take a
second or two on this machine.

    .venv/bin/python bench/checker.py [--records 100000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos.checker import check
from tests.chaos.simulated import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    keys = 100
    for pipeline in ["stateless", "stateful", "windowed"]:
        run = simulate(
            random.Random(1),
            pipeline,
            producers=4,
            keys_per_producer=keys // 4,
            sends_per_key=args.records // keys,
            batch_ms=1000,
            faults=[("driver-kill", 10.0, 1.0)],
        )
        committed = run.committed()
        started = time.perf_counter()
        counts = Counter(rid for b in committed.batches.values() for rid in b.consumed)
        sends = {e["rid"]: e for e in run.events if e["f"] == "send"}
        assert all(rid in sends for rid in counts)
        baseline_s = time.perf_counter() - started
        started = time.perf_counter()
        out = check(run.events, run.header, committed)
        check_s = time.perf_counter() - started
        assert out["valid"], out["error_types"]
        print(
            f"{pipeline:10s} records={out['records']['committed']:7d} batches={len(committed.batches):5d} "
            f"baseline={baseline_s:.3f}s check={check_s:.3f}s ratio={check_s / baseline_s:.1f}x"
        )


if __name__ == "__main__":
    main()
