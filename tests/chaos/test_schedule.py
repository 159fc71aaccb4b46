"""Fault schedules are pure and seeded: the same seed, kinds and count give the same schedule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos.errors import ChaosValueError
from chaos.nemesis.schedule import (
    LOCAL_KINDS,
    REACHABLE_CRASH_POINTS,
    STORAGE_SCENARIOS,
    applicable,
    plan,
)
from chaos.runner import RunConfig
from chaos.storage_faults import parse_plan

kinds_strategy = st.lists(st.sampled_from(LOCAL_KINDS), min_size=1, max_size=7, unique=True)


@given(seed=st.integers(0, 2**32), kinds=kinds_strategy, n=st.integers(0, 40))
def test_the_same_seed_gives_the_same_schedule(seed: int, kinds: list[str], n: int) -> None:
    assert plan(seed, kinds, n) == plan(seed, kinds, n)
    assert len(plan(seed, kinds, n)) == n


@given(seed=st.integers(0, 2**32), kinds=kinds_strategy, rounds=st.integers(1, 4))
def test_every_kind_comes_once_per_round(seed: int, kinds: list[str], rounds: int) -> None:
    steps = plan(seed, kinds, rounds * len(kinds))
    for r in range(rounds):
        assert sorted(s.kind for s in steps[r * len(kinds) : (r + 1) * len(kinds)]) == sorted(kinds)


@given(seed=st.integers(0, 2**32))
def test_crash_points_are_covered_in_turn_before_any_repeats(seed: int) -> None:
    steps = plan(seed, ["crashpoint"], len(REACHABLE_CRASH_POINTS))
    names = [s.detail["point"].partition("@")[0] for s in steps]
    assert sorted(names) == sorted(REACHABLE_CRASH_POINTS)
    assert all(1 <= int(s.detail["point"].partition("@")[2]) <= 3 for s in steps)


@given(seed=st.integers(0, 2**32))
def test_storage_steps_carry_a_valid_plan_document(seed: int) -> None:
    for step in plan(seed, ["storage"], 5):
        assert step.detail["scenario"] in STORAGE_SCENARIOS
        parse_plan(step.detail["plan"])  # the fault injector accepts it


@given(seed=st.integers(0, 2**32))
def test_pauses_stay_short_and_gaps_bounded(seed: int) -> None:
    for step in plan(seed, ["pause", "driver-kill"], 10):
        assert 1.0 <= step.gap_s <= 2.5
        if step.kind == "pause":
            assert 0.3 <= step.detail["pause_s"] <= 1.5


def test_worker_faults_are_not_applicable_on_a_local_master() -> None:
    assert applicable(["driver-kill", "worker-kill", "receiver-worker-kill"], "local[*]") == (
        ["driver-kill"],
        ["worker-kill", "receiver-worker-kill"],
    )
    assert applicable(["worker-kill"], "local-cluster[2]") == (["worker-kill"], [])


def test_receiver_worker_kill_is_scheduled_on_a_cluster_and_not_on_local() -> None:
    kinds = ("driver-kill", "receiver-worker-kill")
    assert applicable(kinds, "local-cluster[2]") == (list(kinds), [])
    assert applicable(kinds, "dask://127.0.0.1:8786")[0] == list(kinds)
    cluster = RunConfig(master="local-cluster[2]", faults=kinds, faults_n=4, seed=5)
    steps, skipped = cluster.steps()
    assert [s.kind for s in steps].count("receiver-worker-kill") == 2 and skipped == []
    local = RunConfig(master="local[2]", faults=kinds, faults_n=4, seed=5)
    steps, skipped = local.steps()
    assert [s.kind for s in steps] == ["driver-kill"] * 4 and skipped == ["receiver-worker-kill"]


@given(seed=st.integers(0, 2**32), n=st.integers(1, 12))
def test_receiver_worker_kill_picks_its_receiver_by_seed(seed: int, n: int) -> None:
    kinds = ["receiver-worker-kill", "worker-kill", "driver-kill"]
    steps = plan(seed, kinds, n)
    assert steps == plan(seed, kinds, n)
    for step in steps:
        if step.kind == "receiver-worker-kill":
            assert set(step.detail) == {"receiver"} and 0 <= step.detail["receiver"] < 64


def test_seeds_spread_receiver_worker_kills_over_the_joins_two_receivers() -> None:
    picks = {s.detail["receiver"] % 2 for x in range(20) for s in plan(x, ["receiver-worker-kill"], 3)}
    assert picks == {0, 1}


def test_bad_kinds_and_crash_points_are_refused_by_name() -> None:
    with pytest.raises(ChaosValueError, match="'earthquake'"):
        plan(1, ["earthquake"], 1)
    with pytest.raises(ChaosValueError, match=r"'no\.such_point'"):
        plan(1, ["crashpoint"], 1, crash_points=["no.such_point"])
    with pytest.raises(ChaosValueError, match="at least one fault kind"):
        plan(1, [], 1)


@given(seed=st.integers(0, 2**32))
def test_storage_scenarios_are_covered_in_turn(seed: int) -> None:
    steps = plan(seed, ["storage"], len(STORAGE_SCENARIOS))
    assert sorted(s.detail["scenario"] for s in steps) == sorted(STORAGE_SCENARIOS)


def test_different_seeds_start_the_crash_point_cycle_at_different_points() -> None:
    firsts = {plan(seed, ["crashpoint"], 1)[0].detail["point"].partition("@")[0] for seed in range(40)}
    assert len(firsts) > 3


def test_zombie_pause_needs_an_object_store_checkpoint() -> None:
    local = RunConfig(faults=("zombie-pause", "pause"), faults_n=2, checkpoint="/tmp/x")
    steps, skipped = local.steps()
    assert [s.kind for s in steps] == ["pause", "pause"] and skipped == ["zombie-pause"]
    s3 = RunConfig(faults=("zombie-pause", "pause"), faults_n=2, checkpoint="faulty::s3://bucket/x")
    steps, skipped = s3.steps()
    assert sorted(s.kind for s in steps) == ["pause", "zombie-pause"] and skipped == []
    zombie = next(s for s in steps if s.kind == "zombie-pause")
    assert 1 <= zombie.detail["successor_batches"] <= 3
