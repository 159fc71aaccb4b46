"""The sink commit log and the stage -> record -> publish protocol, on every backend."""

from __future__ import annotations

import pytest

from checkpoint.commit_log import CommitLog
from checkpoint.errors import AlreadyCommittedError, CheckpointError, CheckpointValueError
from checkpoint.sink_staging import TransactionalFileOutput
from tests.support.s3servers import StorageTarget


def test_record_is_create_once(storage: StorageTarget) -> None:
    log = CommitLog(storage.child("ckpt").url, storage.storage_options)
    assert not log.is_committed("out-1", 1000)
    rec = log.record("out-1", 1000, {"rows": 3})
    assert log.is_committed("out-1", 1000) and not log.is_committed("out-2", 1000)
    with pytest.raises(AlreadyCommittedError) as info:
        log.record("out-1", 1000, {"rows": 3})
    assert info.value.existing == rec
    assert log.get("out-1", 1000) == rec and log.get("out-1", 2000) is None


def test_committed_lists_in_time_order_and_clean_keeps_newest(storage: StorageTarget) -> None:
    log = CommitLog(storage.child("ckpt").url, storage.storage_options)
    for t in (30_000, 1000, 20_000, 5):
        log.record("o", t, {})
    assert log.committed("o") == [5, 1000, 20_000, 30_000]
    assert log.committed("missing") == []
    assert log.clean("o", 20_000) == [5, 1000]
    assert log.committed("o") == [20_000, 30_000]
    assert log.clean("o", 10**9) == [20_000]
    assert log.committed("o") == [30_000]


@pytest.mark.parametrize(("output_id", "batch_ms"), [("../x", 1), ("a/b", 1), ("", 1), ("ok", -1)])
def test_bad_ids_are_value_errors(output_id: str, batch_ms: int) -> None:
    log = CommitLog("memory://dstream-tests/cl-bad")
    with pytest.raises(CheckpointValueError, match="got"):
        log.record(output_id, batch_ms, {})


def test_non_json_info_is_refused() -> None:
    with pytest.raises(CheckpointValueError, match="not plain JSON"):
        CommitLog("memory://dstream-tests/cl-json").record("o", 1, {"x": object()})


def _output(storage: StorageTarget) -> TransactionalFileOutput:
    log = CommitLog(storage.child("ckpt").url, storage.storage_options)
    return TransactionalFileOutput(
        storage.child("out").url, "sink-1", log, storage_options=storage.storage_options
    )


def test_stage_commit_publish(storage: StorageTarget) -> None:
    out = _output(storage)
    staged = out.begin(1000)
    out.stage(staged, "part-0", b"a\n")
    out.stage(staged, "part-1", b"b\n")
    assert out.committed_view() == {}  # staged is not visible
    assert out.commit(staged, {"records": 2}) == "committed"
    assert out.read_committed() == {1000: {"part-0": b"a\n", "part-1": b"b\n"}}
    assert out.committed_view()[1000]["part-0"] == out.final_url(1000, "part-0")
    rec = out.commit_log.get("sink-1", 1000)
    assert rec is not None and rec.info["files"] == ["part-0", "part-1"] and rec.info["records"] == 2


def test_rerun_batch_is_skipped_and_its_attempt_discarded(storage: StorageTarget) -> None:
    out = _output(storage)
    first = out.begin(1000)
    out.stage(first, "part-0", b"first")
    assert out.commit(first) == "committed"
    rerun = out.begin(1000)
    out.stage(rerun, "part-0", b"second run")
    assert out.commit(rerun) == "already-committed"
    assert out.read_committed() == {1000: {"part-0": b"first"}}
    assert out.recover().discarded == []


def test_concurrent_attempts_commit_exactly_one(storage: StorageTarget) -> None:
    out = _output(storage)
    a, b = out.begin(1000, "attempt-a"), out.begin(1000, "attempt-b")
    out.stage(a, "f", b"A")
    out.stage(b, "f", b"B")
    # Both passed the is_committed check; the create-once record decides.
    out.commit_log.record("sink-1", 1000, {"attempt": "attempt-a", "files": ["f"]})
    assert out.commit(b) == "already-committed"
    out.recover()
    assert out.read_committed() == {1000: {"f": b"A"}}


def test_recover_rolls_forward_committed_and_discards_uncommitted(storage: StorageTarget) -> None:
    out = _output(storage)
    committed = out.begin(1000, "c")
    out.stage(committed, "f", b"committed-bytes")
    out.commit_log.record("sink-1", 1000, {"attempt": "c", "files": ["f"]})  # crash before publish
    orphan = out.begin(2000, "u")
    out.stage(orphan, "f", b"uncommitted")  # crash before the record
    view = out.committed_view()
    assert list(view) == [1000] and view[1000]["f"].endswith("_staging/sink-1/1000/c/f")
    assert out.read_committed() == {1000: {"f": b"committed-bytes"}}
    report = out.recover()
    assert report.rolled_forward == [1000] and report.discarded == [2000]
    assert out.committed_view() == {1000: {"f": out.final_url(1000, "f")}}
    assert out.read_committed() == {1000: {"f": b"committed-bytes"}}
    fs = storage.filesystem()
    staging = storage.child("out/_staging/sink-1").url
    leftover = [p for p, d in fs.find(staging, detail=True).items() if d["size"] > 0]
    assert leftover == []  # SeaweedFS may keep empty directory entries
    assert out.recover() == type(report)()  # nothing left to do


def test_commit_without_files_is_refused(storage: StorageTarget) -> None:
    out = _output(storage)
    with pytest.raises(CheckpointValueError, match="staged no files"):
        out.commit(out.begin(1000))


def test_commit_refuses_when_expected_files_are_missing(storage: StorageTarget) -> None:
    out = _output(storage)
    staged = out.begin(1000)
    out.stage(staged, "part-0", b"a")
    with pytest.raises(CheckpointError, match=r"lost staged files \['part-1'\]"):
        out.commit(staged, expected_files=["part-0", "part-1"])
    assert not out.commit_log.is_committed("sink-1", 1000)
    assert out.commit(staged, expected_files=["part-0"]) == "committed"


def test_reader_survives_a_writer_publishing_between_its_view_and_its_reads(storage: StorageTarget) -> None:
    writer = _output(storage)
    staged = writer.begin(1000, "c")
    writer.stage(staged, "f", b"committed-bytes")
    writer.commit_log.record("sink-1", 1000, {"attempt": "c", "files": ["f"]})  # not yet published

    class ReaderRacedByWriter(TransactionalFileOutput):
        def committed_view(self) -> dict[int, dict[str, str]]:
            view = super().committed_view()
            assert view[1000]["f"].endswith("_staging/sink-1/1000/c/f")  # chose the staged copy
            writer.recover()  # the writer publishes, then deletes staging, before the reader reads
            return view

    log = CommitLog(storage.child("ckpt").url, storage.storage_options)
    reader = ReaderRacedByWriter(
        storage.child("out").url, "sink-1", log, storage_options=storage.storage_options
    )
    assert reader.read_committed() == {1000: {"f": b"committed-bytes"}}
