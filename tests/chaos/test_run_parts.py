"""The pure parts of a run: the pipelines' record functions, the SQLite keys, the committed-output
reader's raw view, and the suite's summary table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos.committed_output import batch_output, read_committed_output
from chaos.errors import ChaosValueError
from chaos.pipelines import update_aggregate
from chaos.records import Record, decode, kv_key, parse_kv_key
from chaos.spec import RunSpec
from chaos.suite import percentile, summarize, summary_markdown


@given(st.lists(st.tuples(st.integers(1, 9), st.integers(1, 1000)), max_size=20))
def test_the_running_aggregate_is_sum_count_and_max_seq(values: list[tuple[int, int]]) -> None:
    half = len(values) // 2
    state = update_aggregate(values[half:], update_aggregate(values[:half], None))
    if not values:
        assert state is None
    else:
        assert state == (sum(v for v, _ in values), len(values), max(s for _, s in values))


@given(st.integers(0, 2**45), st.text(max_size=10), st.integers(1, 100))
def test_sqlite_keys_round_trip(batch_ms: int, rid: str, n: int) -> None:
    for output in ({"c": rid}, {"r": [rid, n, n + 1]}):
        assert parse_kv_key(kv_key(batch_ms, output)) == (batch_ms, output)


def test_records_round_trip_and_batches_split_consumed_from_rows() -> None:
    record = Record("p0-k1-3", "a", "p0-k1", 3, 7)
    assert decode(record.encode().encode()) == {
        "rid": "p0-k1-3", "stream": "a", "key": "p0-k1", "seq": 3, "value": 7,
    }  # fmt: skip
    out = batch_output([{"c": "x"}, {"r": ["k", 1, 1, 1]}, {"c": "y"}])
    assert out.consumed == ("x", "y") and out.rows == (("k", 1, 1, 1),)


def test_the_raw_view_shows_published_parts_the_commit_log_does_not_name(tmp_path: Path) -> None:
    spec = RunSpec("stateless", "transactional", "local[2]", str(tmp_path / "ckpt"), str(tmp_path / "out"))
    orphan = tmp_path / "out" / "1000"
    orphan.mkdir(parents=True)
    (orphan / "part-00000.jsonl").write_text(json.dumps({"c": "p0-k0-1"}) + "\n")
    committed = read_committed_output(spec)
    assert committed.batches == {}
    assert committed.uncommitted_visible == ("p0-k0-1",)
    assert committed.quarantined == ()


def test_a_run_spec_refuses_unknown_names() -> None:
    with pytest.raises(ChaosValueError, match="'exotic'"):
        RunSpec("exotic", "transactional", "local[2]", "c", "o")
    with pytest.raises(ChaosValueError, match="file source"):
        RunSpec("join", "transactional", "local[2]", "c", "o", source="files")


def test_the_summary_counts_faults_records_and_recovery_percentiles() -> None:
    verdicts = [
        {
            "valid": True,
            "records": {"acknowledged": 10, "committed": 10, "lost": 0, "duplicated": 0, "unexpected": 0},
            "run": {"faults": [{"fault": "driver-kill"}, {"fault": "crashpoint", "hit": True}]},
            "recovery_s": {
                "per_fault": [
                    {"fault": "driver-kill", "recovered_s": 1.0},
                    {"fault": "crashpoint", "recovered_s": 3.0},
                ]
            },
        },
        {
            "valid": False,
            "records": {"acknowledged": 5, "committed": 6, "lost": 0, "duplicated": 1, "unexpected": 0},
            "run": {"faults": [{"fault": "driver-kill"}]},
            "recovery_s": {
                "per_fault": [{"fault": "driver-kill", "recovered_s": 2.0}, {"recovered_s": None}]
            },
        },
    ]
    summary = summarize(verdicts)
    assert summary["runs"] == 2 and summary["invalid_runs"] == 1 and summary["faults"] == 3
    assert summary["faults_by_kind"] == {"crashpoint": 1, "driver-kill": 2}
    assert summary["records"]["duplicated"] == 1 and summary["records"]["acknowledged"] == 15
    assert summary["recovery_s"] == {"count": 3, "p50": 2.0, "p99": 3.0, "max": 3.0}
    assert percentile([], 0.5) is None
    table = summary_markdown(summary)
    assert summary["recovery_s_by_kind"]["driver-kill"] == {"count": 2, "p50": 1.0, "p99": 2.0, "max": 2.0}
    assert "| driver-kill | 2 | 1.00 | 2.00 | 2.00 |" in table and "| 15 | 16 | 0 | 1 | 0 |" in table
    assert "| 3 faults | 2.00 | 3.00 | 3.00 |" in table
