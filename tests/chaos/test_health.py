"""The health signal: a fault is recovered at the first batch that completed with no failed output
operation; a batch whose sink commit raised (a fenced zombie's, a driver under storage faults) does
not count, and neither does anything a history without "failed" fields lacks (older files: all healthy)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.checker import check
from chaos.checker.liveness import faults_of
from tests.chaos.simulated import simulate


def batch_events(events: list[dict[str, Any]], after: float) -> list[dict[str, Any]]:
    return [e for e in events if e["f"] == "batch-completed" and e["t"] > after]


@settings(max_examples=60)
@given(seed=st.integers(0, 2**16), start=st.floats(0.2, 1.5), failed_n=st.integers(1, 3))
def test_failed_batches_after_a_fault_do_not_count_as_recovery(
    seed: int, start: float, failed_n: int
) -> None:
    run = simulate(random.Random(seed), "stateless", faults=[("driver-kill", start, 0.5)], p_fail=0, p_info=0)
    (healthy,) = faults_of(run.events)
    after = batch_events(run.events, start + 0.5)
    for event in after[:failed_n]:
        event["failed"] = 1
    (fault,) = faults_of(run.events)
    if len(after) > failed_n:
        assert fault.recovered_s == round(after[failed_n]["t"] - start, 6)
        assert healthy.recovered_s is not None and fault.recovered_s >= healthy.recovered_s
    else:
        assert fault.recovered_s is None


def test_a_pipeline_whose_batches_all_fail_after_the_fault_is_not_live() -> None:
    run = simulate(random.Random(2), "stateless", faults=[("driver-kill", 0.5, 0.5)], p_fail=0, p_info=0)
    for event in batch_events(run.events, 1.0):
        event["failed"] = 2
    out = check(run.events, run.header, run.committed())
    assert out["error_types"] == ["liveness"]
    assert out["liveness"]["examples"][0]["why"] == "no batch completed after the fault ended"
    for event in batch_events(run.events, 1.0):
        event["failed"] = 0
    assert check(run.events, run.header, run.committed())["valid"]
