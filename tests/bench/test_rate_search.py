"""The benchmarks' sustainable-rate search step (bench/rate_search.py), against modelled machines.

A machine is modelled by the median batch processing time it gives a rate: linear below its limit (the
rate whose batch takes the whole interval) and growing faster past it, as measured. The search must
end within the benchmarks' probe budget, close to the limit, and never report a rate that did not hold.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.bench.bench_modules import load

rate_search = load("rate_search")

BATCH_S = 1.0
CEILING = 999_999
PROBES_MAX = 8


def processing_ms(rate: float, limit: float, fixed_ms: float, overload: float) -> float:
    """A machine: `fixed_ms` per batch plus time linear in the rate, `limit` taking the whole interval;
    past the limit the time grows `overload` times faster."""
    per_line = (BATCH_S * 1000 - fixed_ms) / limit
    if rate <= limit:
        return fixed_ms + rate * per_line
    return BATCH_S * 1000 + (rate - limit) * per_line * overload


def search(start: float, limit: float, fixed_ms: float, overload: float) -> tuple[float, int, list[float]]:
    """The benchmarks' loop: (best rate that held, probes used, rates probed)."""
    rate, best, over, probed = start, 0.0, float("inf"), []
    for _ in range(PROBES_MAX):
        probed.append(rate)
        ms = processing_ms(rate, limit, fixed_ms, overload)
        if ms < BATCH_S * 1000:
            best = max(best, rate)
        else:
            over = min(over, rate)
        target = rate_search.next_rate(rate, ms, best, over, BATCH_S, CEILING)
        if target is None or int(target) == int(rate):
            return best, len(probed), probed
        rate = target
    return best, len(probed), probed


# The benchmarks start at 0.4 times the plain loop's rate, within a factor of a few of the limit. From
# far below it with a large fixed cost per batch the search needs more probes than the budget: its aim
# is linear from the origin, so it undershoots each time (20,000 lines/s against a limit of 609,588
# with 299 ms fixed took 7 probes).
machines = st.tuples(
    st.floats(0.2, 2.5),  # the start rate, as a fraction of the limit
    st.floats(50_000, 900_000),  # the limit
    st.floats(0, 300),  # fixed ms per batch
    st.floats(1, 4),  # how much faster time grows past the limit
)


@given(machines)
def test_the_search_ends_near_the_limit_and_reports_only_a_rate_that_held(machine: Any) -> None:
    start_fraction, limit, fixed_ms, overload = machine
    start = start_fraction * limit
    best, probes, probed = search(start, limit, fixed_ms, overload)
    assert processing_ms(best, limit, fixed_ms, overload) < BATCH_S * 1000  # the rate reported held
    assert best >= 0.85 * limit, (best, limit, probed)  # and is close to the limit
    assert probes <= 6, probed  # within the benchmarks' budget (PROBES_MAX = 6 in bench/wordcount.py)


def test_from_far_below_with_a_large_fixed_cost_the_search_needs_more_than_the_budget() -> None:
    """The limitation named above, kept visible: the aim from the origin undershoots."""
    best, probes, probed = search(20_000, 609_588, 299, 1.0)
    assert probes > 6 and best >= 0.85 * 609_588, probed


def test_after_an_overloaded_probe_with_a_rate_that_held_it_bisects() -> None:
    # 700k held, 800k did not: aiming from the overloaded probe would fall short of 700k.
    assert rate_search.next_rate(800_000, 1_500, 700_000, 800_000, BATCH_S, CEILING) == 750_000


def test_it_stops_when_the_bracket_is_within_five_percent() -> None:
    assert rate_search.next_rate(720_000, 1_100, 700_000, 720_000, BATCH_S, CEILING) is None


def test_it_stops_when_a_probe_held_and_the_aim_is_at_most_a_step_above() -> None:
    assert rate_search.next_rate(500_000, 930, 500_000, float("inf"), BATCH_S, CEILING) is None
