"""SQLiteKeyValueSink: upserts committed once per batch in one transaction with the commit row."""

from __future__ import annotations

import sqlite3

import pytest

from dstream.errors import DStreamValueError
from dstream.sinks import SQLiteKeyValueSink, write_batch
from tests.sinks.conftest import run_batches


def pairs(batch: int, n: int) -> list[tuple[str, int]]:
    return [(f"k{i % 4}", batch * 100 + i) for i in range(n)]


def reference(batches: list[list[tuple[str, int]]]) -> dict[str, int]:
    """Plain-Python upsert: later batches and later records of a key win."""
    table: dict[str, int] = {}
    for batch in batches:
        for key, value in batch:
            table[key] = value
    return table


def test_commit_rerun_is_a_noop(sc, tmp_path):
    path = tmp_path / "kv.db"
    sink = SQLiteKeyValueSink(path, "counts")
    data = {1000: pairs(1, 6), 2000: [], 3000: pairs(3, 3)}
    for batch_ms, records in data.items():
        assert write_batch(sink, batch_ms, sc.parallelize(records, 2)) == "committed"
    expected = reference(list(data.values()))
    assert sink.read_committed() == expected
    assert sink.committed_batches() == [1000, 2000, 3000]

    # Re-running batch 1000 would overwrite k0..k2 with older values if it were applied again.
    rerun = SQLiteKeyValueSink(path, "counts")
    assert write_batch(rerun, 1000, sc.parallelize(data[1000], 2)) == "skipped"
    txn = rerun.begin(1000)  # even an attempt that gets past the check is refused at commit
    assert rerun.commit(txn, [rerun.stage(txn, 0, data[1000])]) == "already-committed"
    assert rerun.read_committed() == expected
    assert rerun.staged_rows_n() == 0


def test_staged_rows_are_invisible_until_commit_and_recovery_drops_them(sc, tmp_path):
    path = tmp_path / "kv.db"
    sink = SQLiteKeyValueSink(path, "t")
    write_batch(sink, 1000, sc.parallelize([("a", 1)], 1))
    txn = sink.begin(2000)
    staged = [sink.stage(txn, 0, [("a", 2), ("b", 3)])]
    with sqlite3.connect(path) as reader:  # an independent reader during staging
        assert sorted(reader.execute("SELECT key, value FROM t").fetchall()) == [('"a"', "1")]
    assert sink.read_committed() == {"a": 1}
    assert sink.staged_rows_n() == 2
    assert sink.commit(txn, staged) == "committed"
    assert sink.read_committed() == {"a": 2, "b": 3}

    sink.stage(sink.begin(3000), 0, [("c", 4)])  # a crash here leaves staged rows
    fresh = SQLiteKeyValueSink(path, "t")
    assert write_batch(fresh, 4000, sc.parallelize([("d", 5)], 1)) == "committed"
    assert fresh.staged_rows_n() == 0
    assert fresh.read_committed() == {"a": 2, "b": 3, "d": 5}


def test_abort_deletes_the_attempts_rows(tmp_path):
    sink = SQLiteKeyValueSink(tmp_path / "kv.db", "t")
    txn = sink.begin(1000)
    sink.stage(txn, 0, [("x", 1)])
    sink.stage(txn, 1, [("y", 2)])
    sink.abort(txn)
    assert sink.staged_rows_n() == 0
    assert sink.committed_batches() == []


def test_same_key_twice_in_a_batch_keeps_the_later_record(sc, tmp_path):
    sink = SQLiteKeyValueSink(tmp_path / "kv.db", "t")
    write_batch(sink, 1000, sc.parallelize([("k", 1), ("j", 0), ("k", 2), ("k", 3)], 2))
    assert sink.read_committed() == {"k": 3, "j": 0}


def test_int_and_str_keys_differ_and_values_round_trip(sc, tmp_path):
    sink = SQLiteKeyValueSink(tmp_path / "kv.db", "t")
    records = [(1, {"n": [1, 2]}), ("1", None), ("z", "text")]
    write_batch(sink, 1000, sc.parallelize(records, 1))
    assert sink.read_committed() == {1: {"n": [1, 2]}, "1": None, "z": "text"}


def test_pipeline_writes_through_write_to(ssc, clock, tmp_path):
    sink = SQLiteKeyValueSink(tmp_path / "kv.db", "words")
    batches = [["a b", "b"], [], ["c a"]]
    ssc.queueStream(batches).flatMap(str.split).countByValue().write_to(sink)
    run_batches(ssc, clock, 3)
    assert sink.committed_batches() == [1000, 2000, 3000]
    assert sink.read_committed() == {"a": 1, "b": 2, "c": 1}  # last batch's counts win per key


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("ab", r"expected a \(key, value\) pair, got 'ab'"),
        ((1, 2, 3), r"expected a \(key, value\) pair, got \(1, 2, 3\)"),
        ((("t",), 1), r"keys must be str or int, got \('t',\)"),
        (("k", {1, 2}), r"value \{1, 2\} of key 'k' is not JSON-serializable"),
    ],
)
def test_bad_records_fail_naming_the_value(sc, tmp_path, record, message):
    sink = SQLiteKeyValueSink(tmp_path / "kv.db", "t")
    with pytest.raises(Exception, match=message):
        write_batch(sink, 1000, sc.parallelize([("ok", 1), record], 1))
    assert sink.committed_batches() == []
    assert sink.staged_rows_n() == 0


def test_bad_table_and_path_are_refused(tmp_path):
    with pytest.raises(DStreamValueError, match=r"table must match .* got 't; DROP'"):
        SQLiteKeyValueSink(tmp_path / "kv.db", "t; DROP")
    with pytest.raises(DStreamValueError, match=r"got '_dstream_commits'"):
        SQLiteKeyValueSink(tmp_path / "kv.db", "_dstream_commits")
    with pytest.raises(DStreamValueError, match=r"local file path, got 's3://b/kv.db'"):
        SQLiteKeyValueSink("s3://b/kv.db", "t")
