"""saveAsTextFiles publishes each batch's directory atomically (local rename / create-once _SUCCESS)."""

from __future__ import annotations

import json
import threading

from dstream.sinks.text_files import SUCCESS_MARKER, read_text_batches, save_text_batch
from tests.sinks.conftest import list_files, run_batches
from tests.support.raw_fs import raw_fs

# Module-level, so the cloudpickled task function refers to them by reference (same process).
STAGING_STARTED = threading.Event()
RELEASE_STAGING = threading.Event()
WAIT_S = 30.0


def blocking_str(x: int) -> str:
    STAGING_STARTED.set()
    assert RELEASE_STAGING.wait(WAIT_S), "test never released the staging task"
    return f"line-{x}"


def test_batches_are_published_and_read_back(ssc, clock, target):
    prefix = f"{target.url}/out"
    batches = [[3, 1, 2], [], list(range(15))]
    ssc.queueStream(batches).saveAsTextFiles(prefix, "txt", **target.storage_options)
    run_batches(ssc, clock, 3)
    got = read_text_batches(prefix, "txt", target.storage_options)
    assert {t: sorted(lines) for t, lines in got.items()} == {
        1000 * (i + 1): sorted(str(x) for x in b) for i, b in enumerate(batches)
    }
    marker = json.loads(target.filesystem().cat_file(f"{prefix}-1000.txt/{SUCCESS_MARKER}"))
    assert marker == {"format": "dstream-text-output", "version": 1, "parts": ["part-00000", "part-00001"]}
    assert not [p for p in list_files(target) if p.startswith(".")]


def test_rerun_of_a_published_batch_leaves_identical_bytes(sc, target):
    url = f"{target.url}/out-1000"
    assert save_text_batch(sc.parallelize(range(10), 3), url, target.storage_options) is True
    before = {p: target.filesystem().cat_file(f"{target.url}/{p}") for p in list_files(target)}
    assert save_text_batch(sc.parallelize(range(10), 3), url, target.storage_options) is False
    after = {p: target.filesystem().cat_file(f"{target.url}/{p}") for p in list_files(target)}
    assert after == before
    assert sorted(before) == [
        "out-1000/_SUCCESS",
        "out-1000/part-00000",
        "out-1000/part-00001",
        "out-1000/part-00002",
    ]


def test_reader_during_staging_sees_nothing(sc, target):
    STAGING_STARTED.clear()
    RELEASE_STAGING.clear()
    url = f"{target.url}/out-2000"
    errors: list[BaseException] = []

    def write() -> None:
        try:
            save_text_batch(sc.parallelize([1, 2], 2).map(blocking_str), url, target.storage_options)
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert STAGING_STARTED.wait(WAIT_S)
        assert read_text_batches(f"{target.url}/out", None, target.storage_options) == {}
    finally:
        RELEASE_STAGING.set()
        writer.join(WAIT_S)
    assert not errors and not writer.is_alive()
    assert read_text_batches(f"{target.url}/out", None, target.storage_options) == {
        2000: ["line-1", "line-2"]
    }


def test_unpublished_directory_is_absent_and_a_rerun_completes_it(sc, target):
    fs, root = raw_fs(target.url, target.storage_options)
    fs.makedirs(f"{root}/out-3000", exist_ok=True)
    # What a crash before _SUCCESS leaves on an object store: parts (one stray) at the final keys.
    fs.pipe_file(f"{root}/out-3000/part-00000", b"torn\n")
    fs.pipe_file(f"{root}/out-3000/part-00007", b"stray\n")
    assert read_text_batches(f"{target.url}/out", None, target.storage_options) == {}
    assert save_text_batch(sc.parallelize(["a", "b"], 2), f"{target.url}/out-3000", target.storage_options)
    assert read_text_batches(f"{target.url}/out", None, target.storage_options) == {3000: ["a", "b"]}
    assert sorted(list_files(target)) == [
        "out-3000/_SUCCESS",
        "out-3000/part-00000",
        "out-3000/part-00001",
    ]


def test_local_crash_leftover_temp_dir_is_cleaned_by_the_next_attempt(sc, tmp_path):
    stale = tmp_path / ".out-4000.tmp-deadbeef"
    stale.mkdir()
    (stale / "part-00000").write_text("half\n")
    assert read_text_batches(str(tmp_path / "out")) == {}
    save_text_batch(sc.parallelize(["x"], 1), str(tmp_path / "out-4000"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-4000"]
    assert read_text_batches(str(tmp_path / "out")) == {4000: ["x"]}
