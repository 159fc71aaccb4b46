"""The restart plan (pure) against a brute-force reference, with Hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dstream.errors import DStreamValueError
from dstream.streaming.restart_plan import restart_plan


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, list[int], int, int, int]:
    batch = draw(st.sampled_from([1, 200, 250, 1000, 1500]))
    zero = draw(st.integers(0, 50)) * batch + draw(st.sampled_from([0, 7]))
    ckpt_k = draw(st.integers(1, 40))
    checkpoint = zero + ckpt_k * batch
    pending = draw(st.lists(st.integers(1, ckpt_k + 2), max_size=5))
    now = checkpoint + draw(st.integers(-3 * batch, 30 * batch))
    return checkpoint, [zero + k * batch for k in pending], zero, batch, now


def reference(checkpoint: int, pending: list[int], zero: int, batch: int, now: int) -> tuple[int, list[int]]:
    """Walk the grid one batch at a time (no arithmetic shortcuts)."""
    restart = zero + batch
    while restart <= now or restart <= checkpoint:
        restart += batch
    rerun = set(p for p in pending if p < restart)
    t = zero + batch
    while t < restart:
        if t > checkpoint:
            rerun.add(t)
        t += batch
    return restart, sorted(rerun)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_plan_matches_the_grid_walk(s: tuple[int, list[int], int, int, int]) -> None:
    plan = restart_plan(*s)
    assert (plan.restart_ms, list(plan.rerun_ms)) == reference(*s)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_plan_invariants(s: tuple[int, list[int], int, int, int]) -> None:
    checkpoint, pending, zero, batch, now = s
    plan = restart_plan(*s)
    assert (plan.restart_ms - zero) % batch == 0 and plan.restart_ms > max(now, checkpoint)
    assert plan.restart_ms - batch <= max(now, checkpoint, zero)
    assert list(plan.rerun_ms) == sorted(set(plan.rerun_ms))
    assert all(t < plan.restart_ms for t in plan.rerun_ms)
    # pending batches re-run (those at or after the restart time are the timer's own ticks) ...
    assert all(t in plan.rerun_ms for t in pending if t < plan.restart_ms)
    assert all(t in pending for t in plan.rerun_ms if t <= checkpoint)  # ... completed ones never


def test_spark_example_checkpoint_then_clock_jump() -> None:
    # Checkpoint after completing 3000 (nothing pending), driver back at 5400: 4000 and 5000 were
    # missed, the timer resumes at 6000.
    plan = restart_plan(3000, [], 0, 1000, 5400)
    assert plan.restart_ms == 6000 and plan.rerun_ms == (4000, 5000)


def test_bad_batch_duration_is_refused() -> None:
    with pytest.raises(DStreamValueError, match="batch_ms must be > 0, got 0"):
        restart_plan(1000, [], 0, 0, 1000)
    with pytest.raises(DStreamValueError, match="pending batch time must be an int"):
        restart_plan(1000, ["x"], 0, 1000, 1000)  # type: ignore[list-item]
