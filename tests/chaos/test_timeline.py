"""The drill's timeline: its series from a known history, and a PNG that is really one."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from chaos.drill.timeline import draw_timeline, timeline_series
from tests.chaos.simulated import simulate


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_series_count_what_was_acknowledged_and_committed() -> None:
    run = simulate(random.Random(40), "stateless", p_fail=0, p_info=0, faults=[("driver-kill", 1.0, 0.2)])
    committed = run.committed()
    series = timeline_series(run.events, committed)
    assert sum(series.acknowledged_per_s) == pytest.approx(len(run.ok_rids()))
    assert sum(series.committed_per_s) == pytest.approx(len(run.ok_rids()))
    assert len(series.bins_s) == len(series.acknowledged_per_s) == len(series.committed_per_s)
    assert [f.kind for f in series.faults] == ["driver-kill"]
    # The batches held up by the fault are the laggiest.
    assert max(series.lag_max_s) == pytest.approx(
        max(series.lag_max_s[i] for i, t in enumerate(series.lag_t_s) if t >= 1.0)
    )
    assert all(lag >= 0 for lag in series.lag_max_s)


def test_without_committed_output_it_counts_batches() -> None:
    run = simulate(random.Random(41), "stateless")
    series = timeline_series(run.events)
    assert series.committed_label == "batches completed"
    assert sum(series.committed_per_s) == pytest.approx(len(run.assignment))
    assert series.lag_t_s == []


@pytest.mark.parametrize("n_faults", [0, 3, 25])
def test_the_png_is_written_and_is_a_png_of_reasonable_size(tmp_path: Path, n_faults: int) -> None:
    kinds = ["driver-kill", "receiver-crash", "pause", "storage"]
    faults = [(kinds[i % 4], 0.5 + i * 0.4, 0.1) for i in range(n_faults)]
    run = simulate(random.Random(42), "stateful", sends_per_key=60, faults=faults)
    path = draw_timeline(timeline_series(run.events, run.committed()), tmp_path / "timeline.png")
    assert _png_size(path) == (1200, 650)
    assert 20_000 < path.stat().st_size < 1_000_000
    # Also without committed output (a saved history alone).
    other = draw_timeline(timeline_series(run.events), tmp_path / "other.png")
    assert _png_size(other) == (1200, 650)
