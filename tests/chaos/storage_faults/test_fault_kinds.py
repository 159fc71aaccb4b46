"""Each fault kind really happens through the storage seam, and the engine meets it as designed."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

import wal
from chaos.errors import ChaosValueError
from chaos.storage_faults import ENV_VAR, FaultyStorage
from checkpoint.errors import PublishError
from checkpoint.layout import CheckpointName
from checkpoint.metadata import MetadataCheckpoint, list_checkpoints, write_checkpoint
from checkpoint.publish import publish
from tests.chaos.storage_faults.conftest import PROTOCOL, Died, Install
from wal.storage import MemoryStorage, storage_for, unregister_storage

FRAME_OVERHEAD = 20  # bytes of a WAL record's frame header (wal/format.py)


def segment_of(directory: Path) -> Path:
    (segment,) = directory.iterdir()
    return segment


def test_a_torn_append_then_a_crash_leaves_a_torn_tail_that_reopening_cuts(
    install: Install, tmp_path: Path
) -> None:
    install([{"fault": "torn", "ops": ["append"], "after": 4, "count_max": 1, "then": "crash"}], seed=3)
    log = wal.open_wal(f"{PROTOCOL}://{tmp_path}/wal")
    records = [bytes([65 + i]) * 300 for i in range(3)]
    acked = [log.write(r, i) for i, r in enumerate(records)]  # appends 2-4 (1 is the header)
    end = acked[-1].offset + FRAME_OVERHEAD + 300
    with pytest.raises(Died):
        log.write(b"t" * 300, 3)  # append 5: a prefix reaches the file, then the process dies
    torn = segment_of(tmp_path / "wal").stat().st_size - end
    assert 0 < torn < FRAME_OVERHEAD + 300  # this seed's fraction: a real torn tail
    with wal.open_wal(str(tmp_path / "wal")) as restarted:
        assert list(restarted.read_all()) == records
        restarted.write(b"after", 4)
        assert restarted.statistics().dropped[0].reason.startswith("torn tail")
    assert min((tmp_path / "wal").iterdir()).stat().st_size == end  # cut back in place


def test_a_torn_append_that_errors_is_rolled_back_by_the_wal(install: Install, tmp_path: Path) -> None:
    storage = install([{"fault": "torn", "ops": ["append"], "after": 2, "count_max": 1}], seed=3)
    with wal.open_wal(f"{PROTOCOL}://{tmp_path}/wal") as log:
        log.write(b"a" * 300, 1)
        with pytest.raises(wal.WALError, match="torn write"):
            log.write(b"b" * 300, 2)
        log.write(b"c" * 300, 3)
        assert list(log.read_all()) == [b"a" * 300, b"c" * 300]
    assert storage.injected == {"torn": 1}


def test_enospc_surfaces_as_the_engines_clear_errors_and_nothing_acknowledged_is_lost(
    install: Install, tmp_path: Path
) -> None:
    install([{"fault": "enospc", "ops": ["append", "publish"], "after": 2, "count_max": 2}], seed=1)
    with wal.open_wal(f"{PROTOCOL}://{tmp_path}/wal") as log:
        log.write(b"acked", 1)  # append 2 (1 is the header)
        with pytest.raises(wal.WALError, match="No space left on device"):
            log.write(b"refused", 2)
        with pytest.raises(PublishError, match=r"could not publish .*obj.*No space left on device"):
            publish(f"{PROTOCOL}://{tmp_path}/obj", b"x")
        log.write(b"after", 3)
    assert not (tmp_path / "obj").exists()
    with wal.open_wal(str(tmp_path / "wal")) as restarted:
        assert list(restarted.read_all()) == [b"acked", b"after"]


def test_lost_fsyncs_and_a_power_cut_discard_exactly_the_unsynced_suffix(
    install: Install, tmp_path: Path
) -> None:
    # fsync 1 makes the segment's header durable, 2-4 the first three records; 5 and 6 are lost.
    storage = install([{"fault": "lost_fsync", "ops": ["fsync"], "after": 4}])
    log = wal.open_wal(f"{PROTOCOL}://{tmp_path}/wal")
    records = [bytes([65 + i]) * (10 + i) for i in range(5)]
    for i, record in enumerate(records):
        log.write(record, i)  # every write is acknowledged: the lost fsyncs lied
    segment = segment_of(tmp_path / "wal")
    report = storage.simulate_crash()
    assert report.truncated == {str(segment): 2 * FRAME_OVERHEAD + 13 + 14} and report.removed == []
    with wal.open_wal(str(tmp_path / "wal")) as restarted:
        assert list(restarted.read_all()) == records[:3]  # the acknowledged two are gone: a lie detected


def test_a_power_cut_removes_files_whose_name_was_never_synced(install: Install, tmp_path: Path) -> None:
    storage = install([])
    synced, unsynced = f"{tmp_path}/a", f"{tmp_path}/b"
    for path in (synced, unsynced):
        file = storage.open_append(path)
        storage.append(file, [b"durable"])
        storage.fsync(file)
        storage.append(file, [b"-not-yet"])
        storage.close_file(file)
    storage.fsync_dir(str(tmp_path))  # makes `a`'s name durable; `b` is created after
    Path(unsynced).unlink()
    file = storage.open_append(unsynced)
    storage.append(file, [b"x"])
    storage.fsync(file)
    storage.close_file(file)
    report = storage.simulate_crash()
    assert report.removed == [unsynced] and report.truncated == {synced: len(b"-not-yet")}
    assert Path(synced).read_bytes() == b"durable" and not Path(unsynced).exists()


def test_a_process_crash_keeps_what_was_written_and_a_power_cut_does_not(
    install: Install, tmp_path: Path
) -> None:
    for kind, expected in (("crash", b"hello world"), ("power_cut", b"hello")):
        storage = install([{"fault": kind, "ops": ["read"]}])
        file = storage.open_append(f"{tmp_path}/{kind}")
        storage.append(file, [b"hello"])
        storage.fsync(file)
        storage.fsync_dir(str(tmp_path))
        storage.append(file, [b" world"])
        storage.close_file(file)
        with pytest.raises(Died):
            storage.read(f"{tmp_path}/{kind}")
        assert (tmp_path / kind).read_bytes() == expected


def test_latency_goes_through_the_injected_sleep(install: Install, tmp_path: Path) -> None:
    delays: list[float] = []
    install([{"fault": "latency", "latency_ms": 250, "ops": ["publish"]}], sleep=delays.append)
    for i in range(3):
        publish(f"{PROTOCOL}://{tmp_path}/obj-{i}", b"x")
    assert delays == [0.25] * 3 and len(list(tmp_path.iterdir())) == 3


def test_errors_are_eio_and_slowdown_is_s3s_503_as_s3fs_raises_it(install: Install, tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"x")
    storage = install([{"fault": "slowdown", "ops": ["read"], "count_max": 1}, {"fault": "error"}])
    with pytest.raises(OSError, match="SlowDown") as slow:
        storage.read(f"{tmp_path}/x")
    assert slow.value.errno == errno.EBUSY
    with pytest.raises(OSError, match=r"Input/output error \(injected: storage fault rule 1, read") as eio:
        storage.read(f"{tmp_path}/x")
    assert eio.value.errno == errno.EIO


def test_a_torn_publish_leaves_only_a_temp_file_that_readers_ignore(install: Install, tmp_path: Path) -> None:
    install([{"fault": "torn", "ops": ["publish"], "count_max": 1}], seed=2)
    ckpt = f"{PROTOCOL}://{tmp_path}/ckpt"
    with pytest.raises(PublishError, match="torn write"):
        write_checkpoint(ckpt, MetadataCheckpoint(1000, b"graph"), CheckpointName(1000, 0), key=None)
    assert [p.name.startswith(".checkpoint-1000-0.tmp-") for p in (tmp_path / "ckpt/metadata").iterdir()] == [
        True
    ]
    assert list_checkpoints(ckpt) == []


def test_a_torn_create_once_leaves_a_short_object(install: Install, tmp_path: Path) -> None:
    storage = install([{"fault": "torn", "ops": ["create_once"], "count_max": 1}], seed=2)
    with pytest.raises(OSError, match="torn write"):
        storage.create_once(f"{tmp_path}/obj", b"0123456789" * 10)
    assert len((tmp_path / "obj").read_bytes()) < 100


def test_it_wraps_any_storage_memory_included(install: Install) -> None:
    storage = install(
        [{"fault": "error", "ops": ["append"], "after": 1, "count_max": 1}],
        inner=MemoryStorage(
            storage_for("memory://").fs,
            "memory",  # type: ignore[attr-defined]
        ),
    )
    assert storage.kind == "memory" and storage.can_append
    with wal.open_wal(f"{PROTOCOL}://faulty-tests/wal") as log:
        with pytest.raises(wal.WALError, match="Input/output error"):
            log.write(b"a", 1)
        log.write(b"b", 2)
        assert list(log.read_all()) == [b"b"]
    storage.inner.delete("/faulty-tests", recursive=True)


# -- the faulty protocol from outside: storage options and the environment ----------------------


@pytest.fixture
def fresh_faulty() -> None:
    unregister_storage("faulty")  # rebuilt from the entry point, reading the environment anew


PLAN = {
    "format": "dstream-storage-faults",
    "version": 1,
    "seed": 11,
    "rules": [{"fault": "error", "ops": ["publish"]}],
}


def test_the_plan_comes_from_the_environment(
    fresh_faulty: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_VAR, json.dumps(PLAN))
    storage = storage_for(f"faulty::file://{tmp_path}/a")
    assert isinstance(storage, FaultyStorage) and storage.plan.seed == 11
    with pytest.raises(PublishError, match="injected"):
        publish(f"faulty::file://{tmp_path}/a", b"x")
    (tmp_path / "plan.json").write_text(json.dumps({**PLAN, "seed": 12}))
    monkeypatch.setenv(ENV_VAR, f"@{tmp_path}/plan.json")
    unregister_storage("faulty")
    assert storage_for(f"faulty::file://{tmp_path}/a").plan.seed == 12  # type: ignore[attr-defined]


def test_storage_options_override_the_environment_and_are_checked(
    fresh_faulty: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_VAR, json.dumps(PLAN))
    storage = storage_for(f"faulty::file://{tmp_path}", {"plan": {**PLAN, "seed": 5}})
    assert storage.plan.seed == 5  # type: ignore[attr-defined]
    with pytest.raises(ChaosValueError, match=r"unknown storage options \['endpoint_url'\]"):
        storage_for(f"faulty::file://{tmp_path}", {"endpoint_url": "http://x"})
    monkeypatch.setenv(ENV_VAR, '{"format": "dstream-storage-faults", "version": 9}')
    unregister_storage("faulty")
    with pytest.raises(ChaosValueError, match=f"{ENV_VAR}: storage fault plan version 9"):
        storage_for(f"faulty::file://{tmp_path}")


def test_without_a_plan_nothing_is_injected(
    fresh_faulty: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    publish(f"faulty::file://{tmp_path}/a", b"x")
    assert (tmp_path / "a").read_bytes() == b"x"


def test_a_chain_over_s3_takes_the_inner_options_by_protocol_name(fresh_faulty: None, s3_moto: Any) -> None:
    """``faulty::s3://`` wraps the object store: torn puts leave nothing (a PUT is all or nothing)."""
    url = f"faulty::{s3_moto.url}"
    rules = [{"fault": "torn", "ops": ["create_once"], "count_max": 1}]
    options = {"plan": {**PLAN, "rules": rules}, "s3": dict(s3_moto.storage_options)}
    storage = storage_for(url, options)
    assert isinstance(storage, FaultyStorage) and storage.kind == "object-store"
    with wal.open_wal(url, storage_options=options) as log:  # one create-once object per commit
        with pytest.raises(wal.WALError, match="torn write"):
            log.write(b"refused", 1)
        log.write(b"acked", 2)
    with wal.open_wal(s3_moto.url, storage_options=s3_moto.storage_options) as plain:
        assert list(plain.read_all()) == [b"acked"]
