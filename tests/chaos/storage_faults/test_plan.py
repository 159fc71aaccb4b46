"""The fault plan is a pure, seeded decision: same plan and calls, same faults; filters and bounds hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos.errors import ChaosValueError
from chaos.storage_faults.plan import (
    ALL_OPS,
    APPLIES_TO,
    FAULT_KINDS,
    PlanState,
    StorageFaultPlan,
    decide,
    make_plan,
    parse_plan,
    to_json,
)
from chaos.storage_faults.roles import ROLES, role_of

GOLDEN = Path(__file__).parent / "golden"

PATHS = [
    "/c/metadata/checkpoint-1000-0",
    "/c/metadata/driver.lock",
    "/c/receivedBlockMetadata/log-0000000001-1-2",
    "/c/receivedData/0/log-0000000003-5-9",
    "/c/rdd/1/1000/part-00000",
    "/s/_sink/commits/out/00000000000000001000",
    "/s/_staging/out/1000/a/part-00000.jsonl",
    "/s/1000/part-00000.jsonl",
]

calls = st.lists(st.tuples(st.sampled_from(sorted(ALL_OPS)), st.sampled_from(PATHS)), max_size=60)


@st.composite
def rules(draw: st.DrawFn) -> dict[str, object]:
    kind = draw(st.sampled_from(FAULT_KINDS))
    rule: dict[str, object] = {"fault": kind, "probability": draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))}
    if draw(st.booleans()):
        rule["ops"] = draw(st.lists(st.sampled_from(sorted(APPLIES_TO[kind])), min_size=1, max_size=3))
    if draw(st.booleans()):
        rule["roles"] = draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=2))
    if draw(st.booleans()):
        rule["paths"] = draw(st.lists(st.sampled_from(["/c/*", "*/part-*", "/s/*"]), min_size=1, max_size=2))
    rule["after"] = draw(st.integers(0, 3))
    if draw(st.booleans()):
        rule["count_max"] = draw(st.integers(1, 4))
    if kind == "latency":
        rule["latency_ms"] = draw(st.integers(0, 100))
    if kind == "torn":
        rule["then"] = draw(st.sampled_from(["error", "crash", "power_cut"]))
    return rule


plans = st.builds(make_plan, st.integers(0, 2**32), st.lists(rules(), max_size=4))


def run(plan: StorageFaultPlan, sequence: list[tuple[str, str]]) -> tuple[list[object], PlanState]:
    state = PlanState.start(plan)
    out: list[object] = []
    for op, path in sequence:
        fault, state = decide(plan, state, op, path)
        out.append(fault)
    return out, state


@given(plans, calls)
def test_the_same_plan_and_calls_give_the_same_faults(plan: StorageFaultPlan, sequence: list) -> None:
    assert run(plan, sequence) == run(parse_plan(to_json(plan)), sequence)


@given(plans, calls)
def test_a_fault_hits_only_what_its_rule_selects_and_within_its_bounds(
    plan: StorageFaultPlan, sequence: list
) -> None:
    faults, state = run(plan, sequence)
    hits = [0] * len(plan.rules)
    for (op, path), fault in zip(sequence, faults, strict=True):
        if fault is None:
            continue
        rule = plan.rules[fault.rule]  # type: ignore[attr-defined]
        assert fault.kind == rule.fault  # type: ignore[attr-defined]
        assert rule.matches(op, path, role_of(path)) and op in APPLIES_TO[rule.fault]
        assert fault.call > rule.after and 0 <= fault.fraction < 1  # type: ignore[attr-defined]
        assert rule.probability > 0
        hits[fault.rule] += 1  # type: ignore[attr-defined]
    for rule, n, injected in zip(plan.rules, hits, state.injected, strict=True):
        assert n == injected
        assert rule.count_max is None or n <= rule.count_max


@given(st.integers(0, 2**32), calls)
def test_probability_one_hits_every_matching_call_and_zero_none(seed: int, sequence: list) -> None:
    always = make_plan(seed, [{"fault": "error", "ops": ["read"]}])
    never = make_plan(seed, [{"fault": "error", "probability": 0}])
    assert [f is not None for f in run(always, sequence)[0]] == [op == "read" for op, _ in sequence]
    assert run(never, sequence)[0] == [None] * len(sequence)


def test_the_first_matching_rule_that_fires_wins_and_every_matching_rule_counts() -> None:
    plan = make_plan(1, [{"fault": "latency", "latency_ms": 5, "count_max": 1}, {"fault": "error"}])
    faults, state = run(plan, [("read", "/x"), ("read", "/x"), ("read", "/x")])
    assert [f.kind for f in faults] == ["latency", "error", "error"]  # type: ignore[attr-defined]
    assert state.matched == (3, 3) and state.injected == (1, 2)
    assert faults[0].latency_s == 0.005  # type: ignore[attr-defined]


def test_seeds_change_the_schedule_and_the_rate_follows_the_probability() -> None:
    sequence = [("append", "/c/receivedData/0/log-0000000001-1-2")] * 2000
    schedules = []
    for seed in (1, 2):
        faults, _ = run(make_plan(seed, [{"fault": "error", "probability": 0.1}]), sequence)
        schedules.append([f is not None for f in faults])
        assert 120 < sum(schedules[-1]) < 280  # 10% of 2000, far from the bounds of chance
    assert schedules[0] != schedules[1]


def test_roles_of_the_engine_paths() -> None:
    assert [role_of(p) for p in PATHS] == [
        "checkpoint", "lease", "wal", "wal", "checkpoint", "sink", "sink", "other",
    ]  # fmt: skip
    assert role_of("/any/where/log-0000000007-1-2/0000000001-1-2") == "wal"  # an object-store segment
    assert role_of("bucket/app/metadata/driver-epoch-3") == "lease"


def test_the_golden_plan_reads_back_to_the_same_document() -> None:
    text = (GOLDEN / "plan-v1.json").read_text()
    plan = parse_plan(text)
    assert [r.fault for r in plan.rules] == ["error", "latency", "torn", "lost_fsync"]
    assert plan.rules[2].then == "crash" and plan.rules[2].count_max == 1
    assert json.loads(to_json(plan)) == json.loads(text)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"format": "other", "version": 1}, "format 'other', expected 'dstream-storage-faults'"),
        ({"format": "dstream-storage-faults", "version": 2}, "version 2 is not supported"),
        ("{not json", "must be JSON"),
        ({"format": "dstream-storage-faults", "version": 1, "rules": [{"fault": "fire"}]}, "'fire'"),
    ],
)
def test_other_formats_versions_and_kinds_are_refused_by_name(document: object, message: str) -> None:
    with pytest.raises(ChaosValueError, match=message):
        parse_plan(document if isinstance(document, str) else json.dumps(document))


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"fault": "error", "probability": 1.5},
            r"rule 0: probability must be a number in \[0, 1\], got 1.5",
        ),
        ({"fault": "torn", "ops": ["read"]}, "rule 0: a 'torn' fault cannot hit any of"),
        ({"fault": "error", "ops": ["rm"]}, "rule 0: unknown operation 'rm'"),
        ({"fault": "error", "roles": ["driver"]}, "rule 0: unknown role 'driver'"),
        ({"fault": "latency"}, "rule 0: a latency fault needs latency_ms"),
        ({"fault": "error", "then": "crash"}, "then applies to 'torn' faults only"),
        ({"fault": "error", "count_max": 0}, "count_max must be an int >= 1, got 0"),
        ({"fault": "error", "typo": 1}, r"unknown keys \['typo'\]"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_value(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ChaosValueError, match=message):
        make_plan(0, [rule])
