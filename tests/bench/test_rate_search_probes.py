"""The rate search's probes (bench/wordcount.py `RateSearch`) on a scripted machine: a probe over the
batch interval is made again and the better of its two medians counts; a probe with the plain loop
slow just before or after it is made again; neither more than `REPROBES_MAX` times in a search.

One slow probe used to bound a search for good (an "over" caps every later probe): in two benchmark
runs a `local[1]` search ended 20 to 45 % under its limit that way.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.bench.bench_modules import load

# wordcount imports these by name from its own directory: loaded first, under those names.
load("rate_search")
load("e2e_sources")
wordcount = load("wordcount")

USUAL_LOOP = 800_000.0


class Machine:
    """Scripted medians, one per probe, and plain-loop rates, one per measurement (the usual rate when
    the script runs out)."""

    def __init__(self, medians: list[float], loops: list[float] | None = None) -> None:
        self.medians, self.loops = list(medians), list(loops or [])
        self.probed: list[int] = []

    def processing(self, master: str, rate: int, stateful: bool, batches: int) -> float:
        self.probed.append(rate)
        return self.medians.pop(0)

    def loop(self, lines: list[str], repeats: int = 2) -> float:
        return self.loops.pop(0) if self.loops else USUAL_LOOP


def search(monkeypatch: pytest.MonkeyPatch, machine: Machine, start: int = 400_000) -> Any:
    monkeypatch.setattr(wordcount, "median_processing_ms", machine.processing)
    monkeypatch.setattr(wordcount, "plain_loop_rate", machine.loop)
    monkeypatch.setattr(wordcount, "line_pool", lambda lines=0: [])
    found = wordcount.RateSearch("local[1]", False, 3, start)
    while not found.done:
        found.step()
    return found


def test_an_over_probe_is_made_again_and_the_better_median_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = Machine([1100.0, 800.0, 940.0])  # one slow probe at 400,000, then the machine as it is
    found = search(monkeypatch, machine)
    assert machine.probed == [400_000, 400_000, 475_000]  # 475,000 = 400,000 x 950 / 800
    assert found.best == 475_000 and found.over == wordcount.POOL_LINES  # no over bounds the search
    assert "probed again" in found.log[0] and found.reprobes == 1 and found.probes == 2


def test_an_over_seen_twice_bounds_the_search(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = Machine([1100.0, 1050.0, 900.0, 990.0])
    found = search(monkeypatch, machine)
    assert machine.probed[:3] == [400_000, 400_000, 361_904]  # aimed from the better one: 950 / 1050
    assert found.over == 400_000 and found.log[1].split("->")[1].startswith(" median  1050.0 ms over")


def test_a_probe_with_the_loop_slow_after_it_is_made_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loop before the first probe at its usual rate, after it at 500,000 (under 80 % of 800,000).
    machine = Machine([1300.0, 800.0, 940.0], loops=[USUAL_LOOP, 500_000.0])
    found = search(monkeypatch, machine)
    assert machine.probed == [400_000, 400_000, 475_000] and found.best == 475_000
    assert "the machine was slow" in found.log[0] and found.loop_rates == [USUAL_LOOP, USUAL_LOOP]


def test_re_probes_stay_within_their_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    probes_max, reprobes_max = wordcount.PROBES_MAX, wordcount.REPROBES_MAX
    machine = Machine([1500.0] * (probes_max + reprobes_max), loops=[USUAL_LOOP, 100.0] * 50)
    found = search(monkeypatch, machine)
    assert found.reprobes == reprobes_max and found.probes <= probes_max and found.best == 0
    assert len(machine.probed) == found.probes + found.reprobes
