"""The exactly-once checker: clean runs pass, each planted anomaly is caught with the right example."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.checker import ERROR_TYPES, BatchOutput, CommittedOutput, check
from chaos.checker.liveness import percentile
from tests.chaos.simulated import SimRun, simulate

PIPELINES = ["stateless", "stateful", "windowed", "join"]


def verdict(run: SimRun, committed: CommittedOutput | None = None, **kw: Any) -> dict[str, Any]:
    out = check(run.events, run.header, run.committed() if committed is None else committed, **kw)
    json.dumps(out, allow_nan=False)  # JSON-able, always
    return out


def only_errors(out: dict[str, Any], *expected: str) -> None:
    assert out["error_types"] == [e for e in ERROR_TYPES if e in expected], out
    assert out["valid"] is (not expected)


@st.composite
def clean_runs(draw: st.DrawFn) -> SimRun:
    faults = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["driver-kill", "receiver-crash", "crashpoint"]),
                st.floats(0.1, 2.0),
                st.floats(0.0, 0.5),
            ),
            max_size=3,
        )
    )
    return simulate(
        draw(st.randoms(use_true_random=False)),
        draw(st.sampled_from(PIPELINES)),
        producers=draw(st.integers(1, 3)),
        keys_per_producer=draw(st.integers(1, 3)),
        sends_per_key=draw(st.integers(1, 15)),
        p_fail=draw(st.sampled_from([0.0, 0.2])),
        p_info=draw(st.sampled_from([0.0, 0.3])),
        batch_ms=draw(st.sampled_from([100, 250, 500])),
        faults=faults,
    )


@settings(max_examples=150)
@given(clean_runs())
def test_clean_runs_pass(run: SimRun) -> None:
    out = verdict(run)
    only_errors(out)
    ok = len(run.ok_rids())
    assert out["records"]["acknowledged"] == ok and out["records"]["lost"] == 0
    landed_info = {r for rids in run.assignment.values() for r in rids} - set(run.ok_rids())
    assert out["records"]["recovered_info"] == len(landed_info)
    assert out["records"]["committed"] == ok + len(landed_info)
    assert out["recovery_s"]["count"] == sum(1 for e in run.events if e["f"] == "fault-start")
    for fault in out["recovery_s"]["per_fault"]:
        assert fault["recovered_s"] is not None and fault["recovered_s"] >= 0


def test_a_no_fault_run_passes_with_nothing_to_report() -> None:
    run = simulate(random.Random(3), "stateful", p_fail=0, p_info=0)
    out = verdict(run)
    only_errors(out)
    assert out["records"] == {
        "acknowledged": 40,
        "committed": 40,
        "lost": 0,
        "duplicated": 0,
        "unexpected": 0,
        "recovered_info": 0,
    }
    assert out["recovery_s"] == {"count": 0, "p50": None, "p99": None, "max": None, "per_fault": []}
    assert out["quarantined"] == {"count": 0, "examples": []}


def test_info_sends_may_appear_once_or_not_at_all() -> None:
    run = simulate(random.Random(4), "stateless", p_fail=0, p_info=0.5)
    info = [rid for rid, s in run.sends.items() if s["type"] == "info"]
    landed = [rid for rid in info if any(rid in rids for rids in run.assignment.values())]
    assert landed and len(landed) < len(info)  # this seed has both kinds
    only_errors(verdict(run))
    # Twice is one time too many.
    run.assignment[max(run.assignment)].append(landed[0])
    out = verdict(run)
    only_errors(out, "duplicated", "key_repeats")
    assert out["duplicated"]["examples"][0]["rid"] == landed[0]


def _middle_ok_rid(run: SimRun) -> str:
    """An "ok" record of a key whose later seq was committed in a later batch (so its loss is a hole)."""
    for rid in run.ok_rids():
        s = run.sends[rid]
        later = [
            r
            for r, o in run.sends.items()
            if o["key"] == s["key"] and o["seq"] > s["seq"] and o["type"] == "ok"
        ]
        if later and run.batch_of(later[0]) > run.batch_of(rid):
            return rid
    raise AssertionError("no such record in this simulated run")


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_a_planted_loss_is_caught_with_its_record(pipeline: str) -> None:
    run = simulate(random.Random(5), pipeline, p_fail=0, p_info=0)
    rid = _middle_ok_rid(run)
    run.assignment[run.batch_of(rid)].remove(rid)
    out = verdict(run)
    only_errors(out, "lost", "key_gaps")
    assert out["lost"]["count"] == 1
    example = out["lost"]["examples"][0]
    assert (example["rid"], example["key"], example["seq"]) == (
        rid,
        run.sends[rid]["key"],
        run.sends[rid]["seq"],
    )
    seq = run.sends[rid]["seq"]
    assert out["key_gaps"]["examples"][0]["missing"] == [seq, seq]
    assert out["key_gaps"]["examples"][0]["key"] == run.sends[rid]["key"]


def test_a_lost_tail_is_lost_but_not_a_hole() -> None:
    run = simulate(random.Random(6), "stateless", p_fail=0, p_info=0)
    last = max(run.ok_rids(), key=lambda r: run.sends[r]["t"])
    run.assignment[run.batch_of(last)].remove(last)
    out = verdict(run)
    only_errors(out, "lost")
    assert out["lost"]["examples"][0]["rid"] == last


def test_a_wrong_aggregate_without_a_record_error_is_caught() -> None:
    """Rows recomputed from the committed input catch a state update applied twice."""
    run = simulate(random.Random(7), "stateful")
    committed = run.committed()
    t = sorted(committed.batches)[3]
    rows = list(committed.batches[t].rows)
    key, total, count, top = rows[0]
    rows[0] = (key, total + 5, count, top)
    batches = dict(committed.batches)
    batches[t] = BatchOutput(committed.batches[t].consumed, tuple(rows))
    out = verdict(run, CommittedOutput(batches=batches))
    only_errors(out, "aggregate_mismatch")
    assert out["aggregate_mismatch"]["examples"] == [
        {
            "batch": t,
            "row_key": key,
            "expected": [key, total, count, top],
            "actual": [key, total + 5, count, top],
        }
    ]


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_a_duplicate_is_caught_in_every_pipeline(pipeline: str) -> None:
    run = simulate(random.Random(8), pipeline, p_fail=0, p_info=0)
    rid = run.ok_rids()[0]
    first = run.batch_of(rid)
    later = max(run.assignment)
    run.assignment[later].append(rid)
    out = verdict(run)
    only_errors(out, "duplicated", "key_repeats")
    assert out["duplicated"]["examples"] == [
        {
            "rid": rid,
            "count": 2,
            "batches": [first, later],
            "key": run.sends[rid]["key"],
            "seq": run.sends[rid]["seq"],
            "outcome": "ok",
        }
    ]
    assert out["key_repeats"]["examples"][0]["seq"] == run.sends[rid]["seq"]


def test_a_duplicate_committed_with_its_rows_also_breaks_the_aggregate_when_rows_are_stale() -> None:
    """The canary's way: the record is committed twice, and the rows were computed without it."""
    run = simulate(random.Random(9), "stateful", p_fail=0, p_info=0)
    committed = run.committed()
    rid = run.ok_rids()[0]
    later = max(committed.batches)
    batches = dict(committed.batches)
    batches[later] = BatchOutput((*committed.batches[later].consumed, rid), committed.batches[later].rows)
    out = verdict(run, CommittedOutput(batches=batches))
    only_errors(out, "duplicated", "key_repeats", "aggregate_mismatch")


def test_a_reordering_is_caught_with_both_seqs() -> None:
    run = simulate(random.Random(10), "stateless", p_fail=0, p_info=0)
    rid = _middle_ok_rid(run)
    s = run.sends[rid]
    nxt = next(r for r, o in run.sends.items() if o["key"] == s["key"] and o["seq"] == s["seq"] + 1)
    b1, b2 = run.batch_of(rid), run.batch_of(nxt)
    assert b1 < b2
    run.assignment[b1].remove(rid)
    run.assignment[b2].remove(nxt)
    run.assignment[b1].append(nxt)
    run.assignment[b2].append(rid)
    out = verdict(run)
    only_errors(out, "key_reorders")
    assert out["key_reorders"]["examples"] == [
        {
            "stream": "a",
            "key": s["key"],
            "seq": s["seq"],
            "batch": b2,
            "after_seq": s["seq"] + 1,
            "after_batch": b1,
        }
    ]


def test_order_inside_one_batch_is_not_significant() -> None:
    run = simulate(random.Random(11), "stateless", p_fail=0, p_info=0)
    for rids in run.assignment.values():
        rids.reverse()
    only_errors(verdict(run))


def test_phantom_and_refused_records_are_unexpected() -> None:
    run = simulate(random.Random(12), "stateless", p_fail=0.3, p_info=0)
    failed = next(rid for rid, s in run.sends.items() if s["type"] == "fail")
    t = sorted(run.assignment)[2]
    run.assignment[t] += ["phantom-1", failed]
    out = verdict(run)
    only_errors(out, "unexpected")
    assert out["unexpected"]["examples"] == [
        {"rid": "phantom-1", "why": "never sent", "batch": t},
        {
            "rid": failed,
            "why": "send failed",
            "batch": t,
            "key": run.sends[failed]["key"],
            "seq": run.sends[failed]["seq"],
            "outcome": "fail",
        },
    ]


def test_a_phantom_row_is_an_aggregate_mismatch() -> None:
    run = simulate(random.Random(13), "stateless")
    committed = run.committed()
    t = sorted(committed.batches)[1]
    batches = dict(committed.batches)
    batches[t] = BatchOutput(
        committed.batches[t].consumed, (*committed.batches[t].rows, ("ghost", "k", 1, 1))
    )
    out = verdict(run, CommittedOutput(batches=batches))
    only_errors(out, "aggregate_mismatch")
    assert out["aggregate_mismatch"]["examples"] == [
        {"batch": t, "row_key": "ghost", "expected": None, "actual": ["ghost", "k", 1, 1]}
    ]


def test_visible_uncommitted_data_is_an_error() -> None:
    run = simulate(random.Random(14), "stateless", p_fail=0, p_info=0)
    run.uncommitted_visible = ["p0-k0-1"]
    out = verdict(run)
    only_errors(out, "uncommitted_visible")
    assert out["uncommitted_visible"]["examples"][0]["rid"] == "p0-k0-1"


def test_quarantined_records_are_reported_apart_not_lost() -> None:
    run = simulate(random.Random(15), "stateless", p_fail=0, p_info=0)
    rid = _middle_ok_rid(run)
    run.assignment[run.batch_of(rid)].remove(rid)
    run.quarantined = [rid]
    out = verdict(run)
    only_errors(out)
    assert out["quarantined"]["count"] == 1 and out["quarantined"]["examples"][0]["rid"] == rid


def test_examples_are_capped_at_eight_but_all_are_counted() -> None:
    run = simulate(random.Random(16), "stateless", p_fail=0, p_info=0)
    for t in run.assignment:
        run.assignment[t] = []
    out = verdict(run)
    assert out["lost"]["count"] == 40 and len(out["lost"]["examples"]) == 8


def test_rows_read_back_from_json_compare_equal() -> None:
    run = simulate(random.Random(17), "join")
    committed = run.committed()
    as_json = {
        t: BatchOutput(b.consumed, tuple(json.loads(json.dumps(b.rows))))
        for t, b in committed.batches.items()
    }
    only_errors(verdict(run, CommittedOutput(batches=as_json)))


# -- liveness and recovery time -------------------------------------------------------------------


def test_recovery_time_is_first_batch_after_the_end_minus_the_start() -> None:
    run = simulate(
        random.Random(18), "stateless", faults=[("driver-kill", 1.0, 0.3), ("crashpoint", 3.0, 0.1)]
    )
    out = verdict(run)
    only_errors(out)
    per_fault = out["recovery_s"]["per_fault"]
    assert [(f["fault"], f["at_s"]) for f in per_fault] == [("driver-kill", 1.0), ("crashpoint", 3.0)]
    # The simulator completes the first batch after a fault at end + 0.7 s.
    assert per_fault[0]["recovered_s"] == pytest.approx(1.0)
    assert per_fault[1]["recovered_s"] == pytest.approx(0.8)
    assert out["recovery_s"]["max"] == pytest.approx(1.0)
    assert out["recovery_s"]["p50"] == pytest.approx(0.8)


def test_a_fault_recovered_after_the_bound_fails_liveness() -> None:
    run = simulate(random.Random(19), "stateless", faults=[("driver-kill", 1.0, 0.3)])
    out = verdict(run, recovery_bound_s=0.5)
    only_errors(out, "liveness")
    assert out["liveness"]["examples"][0]["why"].startswith("recovered in 1.0 s, over the bound of 0.5 s")


def test_no_batch_after_the_fault_or_no_drain_fails_liveness() -> None:
    run = simulate(random.Random(20), "stateless", faults=[("driver-kill", 1.0, 0.3)])
    run.events = [e for e in run.events if not (e["f"] == "batch-completed" and e["t"] > 1.3)]
    out = verdict(run)
    only_errors(out, "liveness")
    assert out["liveness"]["examples"][0]["why"] == "no batch completed after the fault ended"
    run = simulate(random.Random(20), "stateless", faults=[("driver-kill", 1.0, 0.3)])
    run.events = [e for e in run.events if e["f"] != "drained"]
    out = verdict(run)
    only_errors(out, "liveness")
    assert out["liveness"]["examples"] == [
        {"why": "no 'drained' marker after the last fault", "last_fault_end_s": 1.3}
    ]


def test_a_fault_that_never_ends_fails_liveness() -> None:
    run = simulate(random.Random(21), "stateless", faults=[("pause", 1.0, 0.3)])
    run.events = [e for e in run.events if e["f"] != "fault-end"]
    out = verdict(run)
    only_errors(out, "liveness")
    assert out["liveness"]["examples"][0]["why"] == "the fault never ended"
    assert out["recovery_s"]["per_fault"][0]["recovered_s"] is None


def test_nearest_rank_percentiles() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert percentile([5.0], 99) == 5.0
