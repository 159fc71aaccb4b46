"""TransactionalFileSink on local disk, fsspec memory and moto S3: stage, commit, re-run, abort, views."""

from __future__ import annotations

import json

import cloudpickle
import pytest

from checkpoint.commit_log import CommitLog
from dstream.errors import DStreamError, DStreamValueError
from dstream.sinks import AtLeastOnceFileSink, TransactionalFileSink, write_batch
from tests.sinks.conftest import list_files, run_batches

FORMATS = ["jsonl", "parquet"]


def rows(batch: int, n: int) -> list[dict[str, object]]:
    """Deterministic records of one batch (dicts, so both formats take them)."""
    return [{"batch": batch, "i": i, "word": f"w{batch}-{i}"} for i in range(n)]


def sink_for(target, fmt: str = "jsonl", **kw) -> TransactionalFileSink:
    return TransactionalFileSink(target.url, format=fmt, storage_options=target.storage_options, **kw)


@pytest.mark.parametrize("fmt", FORMATS)
def test_commit_then_rerun_is_skipped_and_leaves_identical_files(sc, target, fmt):
    sink = sink_for(target, fmt)
    data = {1000: rows(1, 7), 2000: [], 3000: rows(3, 2)}
    for batch_ms, records in data.items():
        assert write_batch(sink, batch_ms, sc.parallelize(records, 3)) == "committed"
    files_before = {p: target.filesystem().cat_file(f"{target.url}/{p}") for p in list_files(target)}
    assert sink.read_committed() == data

    rerun = sink_for(target, fmt)  # a new driver process: a fresh sink object over the same place
    for batch_ms, records in data.items():
        assert write_batch(rerun, batch_ms, sc.parallelize(records, 3)) == "skipped"
    assert rerun.read_committed() == data
    files_after = {p: target.filesystem().cat_file(f"{target.url}/{p}") for p in list_files(target)}
    assert files_after == files_before
    assert not [p for p in files_after if p.startswith("_staging/")]


def test_staged_but_uncommitted_batch_is_invisible_then_recovered_away(sc, target):
    sink = sink_for(target)
    write_batch(sink, 1000, sc.parallelize(rows(1, 3), 2))
    txn = sink.begin(2000)
    staged = [sink.stage(txn, i, rows(2, 4)[i * 2 : i * 2 + 2]) for i in range(2)]
    assert [p.records_n for p in staged] == [2, 2]
    assert any(p.startswith("_staging/") for p in list_files(target))
    assert sink.read_committed() == {1000: rows(1, 3)}  # the reader during staging sees nothing new
    assert sink.committed_batches() == [1000]

    fresh = sink_for(target)  # the next process recovers before its first batch
    assert write_batch(fresh, 2000, sc.parallelize(rows(2, 4), 2)) == "committed"
    assert fresh.read_committed() == {1000: rows(1, 3), 2000: rows(2, 4)}
    assert not [p for p in list_files(target) if p.startswith("_staging/")]


def test_abort_deletes_the_attempts_staging(target):
    sink = sink_for(target)
    txn = sink.begin(5000)
    sink.stage(txn, 0, rows(5, 3))
    assert any(txn.attempt in p for p in list_files(target))
    sink.abort(txn)
    assert not any(txn.attempt in p for p in list_files(target))
    assert sink.read_committed() == {}


def test_second_attempt_at_a_committed_batch_is_discarded(target):
    sink = sink_for(target)
    first, second = sink.begin(7000), sink.begin(7000)
    staged_first = [sink.stage(first, 0, rows(7, 2)), sink.stage(first, 1, [])]
    staged_second = [sink.stage(second, 0, rows(70, 5))]  # a concurrent (zombie) attempt, other data
    assert sink.commit(first, staged_first) == "committed"
    assert sink.commit(second, staged_second) == "already-committed"
    assert sink.read_committed() == {7000: rows(7, 2)}
    assert not any(second.attempt in p for p in list_files(target))


def test_commit_log_lives_with_the_data_so_any_reader_sees_the_committed_view(sc, target):
    ckpt, out = target.child("ckpt"), target.child("out")
    sink = TransactionalFileSink(out.url, storage_options=out.storage_options, output_id="counts")
    data = {1000: rows(1, 3), 2000: rows(2, 1)}
    for batch_ms, records in data.items():
        outcome = write_batch(
            sink,
            batch_ms,
            sc.parallelize(records, 2),
            checkpoint_dir=ckpt.url,
            storage_options=ckpt.storage_options,
        )
        assert outcome == "committed"
    assert sink.read_committed() == data
    assert CommitLog(out.child("_sink").url, out.storage_options).committed("counts") == [1000, 2000]
    assert not [p for p in list_files(ckpt) if "commits" in p]
    fresh_reader = TransactionalFileSink(out.url, storage_options=out.storage_options, output_id="counts")
    assert fresh_reader.read_committed() == data


def test_commit_dir_moves_the_commit_log_and_readers_must_name_it(sc, target):
    ckpt, out = target.child("ckpt"), target.child("out")
    options = {"storage_options": out.storage_options, "output_id": "counts"}
    sink = TransactionalFileSink(out.url, commit_dir=ckpt.url, **options)
    assert write_batch(sink, 1000, sc.parallelize(rows(1, 2), 2)) == "committed"
    assert CommitLog(ckpt.url, ckpt.storage_options).committed("counts") == [1000]
    assert TransactionalFileSink(out.url, commit_dir=ckpt.url, **options).read_committed() == {
        1000: rows(1, 2)
    }
    assert TransactionalFileSink(out.url, **options).read_committed() == {}


def test_pipeline_without_checkpoint_keeps_commits_with_the_data(ssc, clock, tmp_path):
    sink = TransactionalFileSink(str(tmp_path / "out"), format="parquet", output_id="p")
    ssc.queueStream([[{"x": 1}], [{"x": 2}, {"x": 3}]]).write_to(sink)
    run_batches(ssc, clock, 2)
    assert TransactionalFileSink(str(tmp_path / "out"), format="parquet", output_id="p").read_committed() == {
        1000: [{"x": 1}],
        2000: [{"x": 2}, {"x": 3}],
    }
    assert sorted(p.name for p in (tmp_path / "out" / "_sink" / "commits" / "p").iterdir()) == [
        f"{1000:020d}",
        f"{2000:020d}",
    ]


def test_manifest_names_the_parts_and_their_counts(sc, tmp_path):
    sink = TransactionalFileSink(str(tmp_path))
    write_batch(sink, 1000, sc.parallelize(rows(1, 5), 2))
    manifest = json.loads((tmp_path / "1000" / "_manifest.json").read_bytes())
    assert manifest == {"format": "jsonl", "parts": [["part-00000.jsonl", 2], ["part-00001.jsonl", 3]]}
    lines = (tmp_path / "1000" / "part-00001.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows(1, 5)[2:]


def test_unknown_format_is_refused_naming_it(tmp_path):
    with pytest.raises(DStreamValueError, match=r"unknown sink format 'csv'.*jsonl.*parquet"):
        TransactionalFileSink(str(tmp_path), format="csv")


def test_non_json_record_fails_the_batch_naming_the_record(sc, tmp_path):
    sink = TransactionalFileSink(str(tmp_path))
    with pytest.raises(Exception, match=r"record \{1, 2\} is not JSON-serializable"):
        write_batch(sink, 1000, sc.parallelize([{"ok": 1}, {1, 2}], 1))
    assert sink.read_committed() == {}
    assert not any("_staging" in p.as_posix() and p.is_file() for p in tmp_path.rglob("*"))


def test_parquet_wants_dict_rows(sc, tmp_path):
    sink = TransactionalFileSink(str(tmp_path), format="parquet")
    with pytest.raises(Exception, match=r"parquet records must be dicts \(rows\), got \('a', 1\)"):
        write_batch(sink, 1000, sc.parallelize([("a", 1)], 1))


def test_bad_output_id_and_write_to_a_non_sink_are_refused(ssc, tmp_path):
    with pytest.raises(DStreamValueError, match=r"output_id .* got 'a/b'"):
        TransactionalFileSink(str(tmp_path), output_id="a/b")
    with pytest.raises(DStreamValueError, match=r"expected a dstream.sinks.TransactionalSink, got 'nope'"):
        ssc.queueStream([[1]]).write_to("nope")


def test_at_least_once_canary_duplicates_a_rerun_batch(sc, target):
    canary = AtLeastOnceFileSink(target.url, storage_options=target.storage_options)
    records = [{"id": i} for i in range(4)]
    assert write_batch(canary, 1000, sc.parallelize(records, 2)) == "committed"
    assert write_batch(canary, 1000, sc.parallelize(records, 2)) == "committed"
    got = canary.read_committed()[1000]
    assert sorted(got, key=lambda r: r["id"]) == sorted(records * 2, key=lambda r: r["id"])


def test_two_outputs_with_one_output_id_are_refused(ssc, tmp_path):
    stream = ssc.queueStream([[1]])
    stream.write_to(TransactionalFileSink(str(tmp_path / "a"), output_id="same"))
    with pytest.raises(
        DStreamValueError, match=r"output_id 'same' is already written by TransactionalFileSink"
    ):
        stream.map(str).write_to(TransactionalFileSink(str(tmp_path / "b"), output_id="same"))


def test_commit_of_an_attempt_whose_staging_is_gone_is_refused(target):
    sink = sink_for(target)
    txn = sink.begin(9000)
    staged = [sink.stage(txn, 0, rows(9, 2))]
    sink_for(target).recover()  # e.g. a second driver's recovery deletes the uncommitted staging
    with pytest.raises(DStreamError, match=r"lost staged files \['part-00000.jsonl'\]"):
        sink.commit(txn, staged)
    assert sink.read_committed() == {}


def test_sink_pickles_without_its_per_process_state(sc, tmp_path):
    sink = TransactionalFileSink(str(tmp_path), output_id="p")
    write_batch(sink, 1000, sc.parallelize(rows(1, 2), 1))
    assert sink._recovered and "_output" in sink.__dict__
    copy = cloudpickle.loads(cloudpickle.dumps(sink))
    assert not hasattr(copy, "_recovered") and "_output" not in copy.__dict__
    assert copy.read_committed() == {1000: rows(1, 2)}


@pytest.mark.seaweedfs
def test_file_sink_and_text_output_on_a_real_s3_server(request, sc, tmp_path):
    from dstream.sinks.text_files import read_text_batches, save_text_batch
    from tests.sinks.conftest import make_target

    target = make_target("s3-seaweedfs", request, tmp_path)
    data = {1000: rows(1, 5), 2000: []}
    for batch_ms, records in data.items():
        assert write_batch(sink_for(target, "parquet"), batch_ms, sc.parallelize(records, 2)) == "committed"
    assert write_batch(sink_for(target, "parquet"), 1000, sc.parallelize(data[1000], 2)) == "skipped"
    assert sink_for(target, "parquet").read_committed() == data
    assert save_text_batch(sc.parallelize(range(4), 2), f"{target.url}/t-1000", target.storage_options)
    assert read_text_batches(f"{target.url}/t", None, target.storage_options) == {1000: ["0", "1", "2", "3"]}
