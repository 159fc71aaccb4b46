"""SIGKILL a real process while it publishes, at random moments and at every named crash point.

Whatever the moment, the directory must yield the newest fully published metadata checkpoint (never a
torn one, never older than the last acknowledged), RDD dirs must be committed with every part valid or
not committed, and a sink's committed view must hold exactly the committed batches' data.
"""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest

from checkpoint import rdd_data
from checkpoint.commit_log import CommitLog
from checkpoint.layout import rdd_stream_dir
from checkpoint.metadata import read_latest
from checkpoint.sink_staging import TransactionalFileOutput
from tests.checkpoint.crash_child import PARTS_N, payload
from tests.support.children import run_acking_child
from tests.support.raw_fs import raw_fs
from tests.support.s3servers import StorageTarget
from wal import crashpoints

pytestmark = pytest.mark.chaos
CHILD_TIMEOUT_S = 60.0


def run_child(
    mode: str, target: StorageTarget, crash: str | None, kill_after_acks: int | None, delay_s: float
) -> tuple[int, list[int]]:
    """Run the child until it dies; returns (returncode, acknowledged numbers)."""
    return run_acking_child(
        "tests.checkpoint.crash_child",
        [mode, target.url, json.dumps(target.storage_options)],
        crash=crash, kill_after_acks=kill_after_acks, delay_s=delay_s, timeout_s=CHILD_TIMEOUT_S,
    )  # fmt: skip


def check_metadata(target: StorageTarget, acked_seq: int | None) -> None:
    latest, skipped = read_latest(target.url, storage_options=target.storage_options, key=None)
    assert skipped == [], f"a torn or corrupt checkpoint is visible: {skipped}"
    if acked_seq is None:
        return
    assert latest is not None and latest.name is not None
    assert latest.name.seq >= acked_seq
    assert latest.graph_blob == payload(latest.batch_ms)


def check_rdd(target: StorageTarget, acked: list[int]) -> None:
    so = target.storage_options
    fs, root = raw_fs(rdd_stream_dir(target.url, "s"), so)
    fs.invalidate_cache(root)
    batches = (
        sorted(int(p.rstrip("/").rsplit("/", 1)[-1]) for p in fs.ls(root, detail=False))
        if fs.exists(root)
        else []
    )
    for batch in batches:
        d = f"{rdd_stream_dir(target.url, 's')}/{batch}"
        if rdd_data.is_committed(d, storage_options=so):
            assert rdd_data.committed_partitions(d, storage_options=so) == PARTS_N
            for i in range(PARTS_N):
                assert rdd_data.read_part(d, i, storage_options=so) == payload(batch, i)
    for batch in acked:
        assert rdd_data.is_committed(f"{rdd_stream_dir(target.url, 's')}/{batch}", storage_options=so)


def check_sink(target: StorageTarget, acked: list[int]) -> None:
    so = target.storage_options
    out = TransactionalFileOutput(
        f"{target.url}/out", "sink", CommitLog(f"{target.url}/ckpt", so), storage_options=so
    )
    for _ in range(2):  # before and after recovery
        view = out.read_committed()
        assert set(acked) <= set(view)
        for batch, files in view.items():
            assert files == {f"part-{i}": payload(batch, i, size=8_000) for i in range(2)}
        out.recover()


CHECKS = {"metadata": check_metadata, "rdd": check_rdd, "sink": check_sink}
CRASH_POINTS = {
    "metadata": [
        crashpoints.METADATA_AFTER_WRITE_BEFORE_PUBLISH,
        crashpoints.METADATA_AFTER_PUBLISH_BEFORE_RETENTION,
        crashpoints.METADATA_AFTER_PUBLISH_BEFORE_CALLBACK,
    ],
    "rdd": [crashpoints.RDD_AFTER_PART_WRITE, crashpoints.RDD_AFTER_PARTS_BEFORE_COMMIT],
    "sink": [
        crashpoints.SINK_AFTER_STAGE_BEFORE_COMMIT,
        crashpoints.SINK_AFTER_COMMIT_BEFORE_PUBLISH,
        crashpoints.SINK_AFTER_PUBLISH_BEFORE_CLEANUP,
    ],
}


def _target(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StorageTarget:
    if kind == "local":
        return StorageTarget("local", str(tmp_path / "store"))
    return request.getfixturevalue("s3_moto")


def _verify(mode: str, target: StorageTarget, acks: list[int]) -> None:
    if mode == "metadata":
        check_metadata(target, max(acks) if acks else None)
    else:
        CHECKS[mode](target, acks)  # type: ignore[operator]


@pytest.mark.parametrize("kind", ["local", "s3-moto"])
@pytest.mark.parametrize("mode", ["metadata", "rdd", "sink"])
def test_kill_at_every_named_crash_point(
    mode: str, kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    target = _target(kind, request, tmp_path)
    rng = random.Random(f"{mode}-{kind}")
    all_acks: list[int] = []
    for point in CRASH_POINTS[mode]:
        nth = rng.randint(1, 3)
        rc, acks = run_child(mode, target, f"{point}@{nth}", None, 0.0)
        assert rc == -signal.SIGKILL, f"crash point {point}@{nth} never fired"
        all_acks += acks
        _verify(mode, target, all_acks)
    # A run after all the crashes makes progress and still satisfies the checks.
    _rc, acks = run_child(mode, target, None, 1, 0.0)
    assert acks
    _verify(mode, target, all_acks + acks)


@pytest.mark.parametrize("mode", ["metadata", "rdd", "sink"])
def test_kill_at_random_moments(mode: str, tmp_path: Path) -> None:
    target = StorageTarget("local", str(tmp_path / "store"))
    rng = random.Random(f"random-{mode}")
    all_acks: list[int] = []
    for _ in range(5):
        _rc, acks = run_child(mode, target, None, rng.randint(1, 4), rng.uniform(0.0, 0.03))
        all_acks += acks
        _verify(mode, target, all_acks)
