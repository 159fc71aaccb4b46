"""SIGKILL a streaming pipeline while it writes to each sink; a re-run must leave exact output.

The child (tests/sinks/pipeline_child.py) is killed at the sinks' crash points and at random moments.
Right after the kill, the committed view must hold complete batches only (every acknowledged one,
at most one more, each with exactly its records). Then the same pipeline runs again from the beginning
over the same input, and the committed view must be exact: every batch once, identical content.
The at-least-once canary, put through the same check, must fail it.
"""

from __future__ import annotations

import json
import random
import signal
from collections import Counter
from typing import Any

import pytest

from dstream.sinks import AtLeastOnceFileSink, SQLiteKeyValueSink, TransactionalFileSink
from dstream.sinks.text_files import CRASH_AFTER_PARTS_BEFORE_SUCCESS, read_text_batches
from tests.sinks.conftest import make_target
from tests.sinks.pipeline_child import BATCHES_N, TABLE, expected_batches, to_pair
from tests.support.children import run_acking_child
from tests.support.raw_fs import raw_fs
from tests.support.s3servers import StorageTarget
from wal import crashpoints

pytestmark = pytest.mark.chaos
CHILD_TIMEOUT_S = 60.0
SEED = 20261121


def run_child(
    kind: str, url: str, so: dict[str, Any], crash: str | None, kill_after_acks: int | None, delay_s: float
) -> tuple[int, list[int]]:
    """Run the pipeline child until it ends or is killed; returns (returncode, acknowledged batch times)."""
    return run_acking_child(
        "tests.sinks.pipeline_child", [kind, url, json.dumps(so)],
        crash=crash, kill_after_acks=kill_after_acks, delay_s=delay_s, timeout_s=CHILD_TIMEOUT_S,
    )  # fmt: skip


def exactness_problems(committed: dict[int, list[Any]], expected: dict[int, list[Any]]) -> list[str]:
    """What makes `committed` differ from complete batches of `expected` (a pure checker)."""
    problems = []
    for batch_ms, records in sorted(committed.items()):
        if batch_ms not in expected:
            problems.append(f"unexpected batch {batch_ms}")
            continue
        got = Counter(json.dumps(r, sort_keys=True) for r in records)
        want = Counter(json.dumps(r, sort_keys=True) for r in expected[batch_ms])
        if got != want:
            problems.append(f"batch {batch_ms}: extra {dict(got - want)}, missing {dict(want - got)}")
    return problems


def check_after_kill(committed: dict[int, list[Any]], acks: list[int]) -> None:
    expected = expected_batches()
    assert exactness_problems(committed, expected) == []
    times = sorted(committed)
    assert set(acks) <= set(times), f"acknowledged {acks} but committed only {times}"
    assert times == sorted(expected)[: len(times)], f"committed {times} is not a prefix of the batches"
    assert len(times) <= len(acks) + 1


# -- committed views per sink kind -------------------------------------------------------------------


def view_file(url: str, so: dict[str, Any], fmt: str) -> dict[int, list[Any]]:
    return TransactionalFileSink(url, format=fmt, storage_options=so, output_id="out").read_committed()


def view_text(url: str, so: dict[str, Any]) -> dict[int, list[Any]]:
    return {
        t: [json.loads(line) for line in lines]
        for t, lines in read_text_batches(f"{url}/out", None, so).items()
    }


def staging_leftovers(url: str, so: dict[str, Any]) -> list[str]:
    fs, root = raw_fs(f"{url}/_staging", so)
    fs.invalidate_cache()
    try:
        return [p for p in fs.find(root) if not p.rstrip("/").endswith("_staging/out")]
    except FileNotFoundError:
        return []


FILE_CASES = [
    ("local", "jsonl", crashpoints.SINK_AFTER_STAGE_BEFORE_COMMIT + "@3", None),
    ("local", "jsonl", crashpoints.SINK_AFTER_COMMIT_BEFORE_PUBLISH + "@2", None),
    ("local", "jsonl", crashpoints.SINK_AFTER_PUBLISH_BEFORE_CLEANUP + "@5", None),
    ("local", "parquet", None, 3),
    ("s3-moto", "parquet", crashpoints.SINK_AFTER_STAGE_BEFORE_COMMIT + "@2", None),
    ("s3-moto", "jsonl", crashpoints.SINK_AFTER_COMMIT_BEFORE_PUBLISH + "@4", None),
    ("s3-moto", "jsonl", None, 2),
]


@pytest.mark.parametrize(("kind", "fmt", "crash", "kill_after"), FILE_CASES)
def test_file_sink_exact_after_sigkill_and_rerun(request, tmp_path, kind, fmt, crash, kill_after):
    target: StorageTarget = make_target(kind, request, tmp_path)
    rng = random.Random(f"{SEED}-{kind}-{fmt}-{crash}-{kill_after}")
    url, so = target.url, target.storage_options
    rc, acks = run_child(f"file-{fmt}", url, so, crash, kill_after, rng.uniform(0, 0.05))
    assert rc == -signal.SIGKILL, "the child should have been killed"
    after_kill = view_file(url, so, fmt)
    check_after_kill(after_kill, acks)
    if crash is not None:
        crashed_at = int(crash.split("@")[1]) * 1000
        committed_at_crash = not crash.startswith(crashpoints.SINK_AFTER_STAGE_BEFORE_COMMIT)
        assert (crashed_at in after_kill) == committed_at_crash

    rc, acks = run_child(f"file-{fmt}", url, so, None, None, 0)
    assert rc == 0 and len(acks) == BATCHES_N
    assert view_file(url, so, fmt) == expected_batches()
    assert staging_leftovers(url, so) == []


@pytest.mark.parametrize(
    ("crash", "kill_after"), [(crashpoints.SINK_AFTER_STAGE_BEFORE_COMMIT + "@3", None), (None, 2)]
)
def test_sqlite_sink_exact_after_sigkill_and_rerun(tmp_path, crash, kill_after):
    path = str(tmp_path / "kv.db")
    rng = random.Random(f"{SEED}-sqlite-{crash}-{kill_after}")
    rc, acks = run_child("sqlite", path, {}, crash, kill_after, rng.uniform(0, 0.05))
    assert rc == -signal.SIGKILL
    reader = SQLiteKeyValueSink(path, TABLE, output_id="out")
    committed = reader.committed_batches()
    assert set(acks) <= set(committed) and len(committed) <= len(acks) + 1
    assert committed == sorted(expected_batches())[: len(committed)]
    assert reader.read_committed() == upserted([expected_batches()[t] for t in committed])
    if crash is not None:
        assert committed == acks  # killed before the commit transaction of batch 3

    rc, acks = run_child("sqlite", path, {}, None, None, 0)
    assert rc == 0 and len(acks) == BATCHES_N
    assert reader.committed_batches() == sorted(expected_batches())
    assert reader.read_committed() == upserted(list(expected_batches().values()))
    assert reader.staged_rows_n() == 0


def upserted(batches: list[list[dict[str, Any]]]) -> dict[str, int]:
    table: dict[str, int] = {}
    for batch in batches:
        for record in batch:
            key, value = to_pair(record)
            table[key] = value
    return table


@pytest.mark.parametrize(
    ("kind", "crash", "kill_after"),
    [
        ("local", CRASH_AFTER_PARTS_BEFORE_SUCCESS + "@3", None),
        ("local", None, 4),
        ("s3-moto", CRASH_AFTER_PARTS_BEFORE_SUCCESS + "@2", None),
    ],
)
def test_save_as_text_files_exact_after_sigkill_and_rerun(request, tmp_path, kind, crash, kill_after):
    target = make_target(kind, request, tmp_path)
    rng = random.Random(f"{SEED}-text-{kind}-{crash}-{kill_after}")
    url, so = target.url, target.storage_options
    rc, acks = run_child("text", url, so, crash, kill_after, rng.uniform(0, 0.05))
    assert rc == -signal.SIGKILL
    after_kill = view_text(url, so)
    check_after_kill(after_kill, acks)
    if crash is not None:
        assert sorted(after_kill) == acks  # the crashed batch's parts exist but it is not published

    rc, acks = run_child("text", url, so, None, None, 0)
    assert rc == 0 and len(acks) == BATCHES_N
    assert view_text(url, so) == expected_batches()


def test_the_checker_catches_the_at_least_once_canary(tmp_path):
    url = str(tmp_path / "canary")
    rc, _ = run_child("canary", url, {}, None, 3, 0.0)
    assert rc == -signal.SIGKILL
    run_child("canary", url, {}, None, None, 0)
    committed = AtLeastOnceFileSink(url, output_id="out").read_committed()
    problems = exactness_problems(committed, expected_batches())
    assert problems, "the canary re-wrote acknowledged batches; the checker must report duplicates"
    assert all("extra" in p for p in problems)
