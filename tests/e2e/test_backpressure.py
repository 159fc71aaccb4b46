"""A fast producer against a slow pipeline: memory stays bounded, producers are slowed, nothing is lost.

The load is `bench/backpressure.py pipeline` in a child process (its own RSS): producer processes push
over 127.0.0.1 as fast as they are acknowledged, the pipeline sleeps `cost_us` per record, and after
the push the child drains, stops gracefully and reports its figures. Before the bounds of issue 12 the
driver acknowledged about 12 times what it could process and grew by 640 MB in 12 s
(docs/benchmarks.md). The assertions are generous bounds that only boundedness passes:
- peak RSS growth under 600 MB;
- acknowledgements slowed to near the pipeline's rate (under 3 times it, with the bounded backlog);
- the backlog left when the producers stop drains within DRAIN_S_MAX;
- every acknowledged record is in the output exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RSS_GROWTH_MB_MAX = 600
ACK_RATE_OVER_SUSTAINABLE_MAX = 3.0
DRAIN_S_MAX = 60.0
CHILD_S_MAX = 170.0


def run_load(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "bench/backpressure.py", "pipeline", "off", "--speedup", "0", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=CHILD_S_MAX,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def assert_bounded(figures: dict[str, Any]) -> None:
    assert figures["producer_errors"] == []
    assert (figures["lost"], figures["duplicated"]) == (0, 0)
    assert figures["acked"] > 0
    assert figures["rss_growth_mb"] < RSS_GROWTH_MB_MAX, figures
    assert figures["acked_per_s"] < ACK_RATE_OVER_SUSTAINABLE_MAX * figures["sustainable_per_s"], figures
    assert figures["drain_s"] < DRAIN_S_MAX, figures


def test_a_flat_out_producer_is_slowed_to_a_slow_pipeline_with_bounded_memory() -> None:
    # Small bounds keep the run short: 10 s of pushing, a backlog of a few seconds of processing.
    figures = run_load(
        "--seconds", "10", "--cost-us", "20", "--batch-ms", "200",
        "--conf", "dstream.receiver.unallocated_records_max=50000",
        "--conf", "dstream.streaming.pendingBatchesMax=2",
    )  # fmt: skip
    assert_bounded(figures)


@pytest.mark.slow
def test_thirty_seconds_flat_out_with_the_default_bounds() -> None:
    assert_bounded(run_load("--seconds", "30", "--cost-us", "10", "--batch-ms", "500"))
