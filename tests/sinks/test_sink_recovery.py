"""End to end: a checkpointed driver writing textFileStream -> map -> TransactionalFileSink is
SIGKILLed, restarted with StreamingContext.getOrCreate, and the committed output is exact."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest

from checkpoint.commit_log import CommitLog
from dstream.sinks import TransactionalFileSink
from tests.sinks.recovery_child import BATCH_MS, BATCHES_N, T0_MS, expected_output, input_lines
from tests.support.children import run_acking_child
from wal import crashpoints

pytestmark = pytest.mark.chaos
CHILD_TIMEOUT_S = 90.0
SEED = 20261121


def write_inputs(in_dir: Path) -> None:
    """Input file i, with a modification time inside batch i's window."""
    in_dir.mkdir()
    for i in range(1, BATCHES_N + 1):
        path = in_dir / f"part-{i:03d}.txt"
        path.write_text("".join(f"{line}\n" for line in input_lines(i)))
        mtime_s = (T0_MS + i * BATCH_MS - 500) / 1000
        os.utime(path, (mtime_s, mtime_s))


def run_driver(
    mode: str, dirs: list[str], crash: str | None, kill_after: int | None, delay_s: float
) -> tuple[int, list[int]]:
    return run_acking_child(
        "tests.sinks.recovery_child", [mode, *dirs],
        crash=crash, kill_after_acks=kill_after, delay_s=delay_s, timeout_s=CHILD_TIMEOUT_S,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("crash", "kill_after"),
    [
        (crashpoints.SINK_AFTER_STAGE_BEFORE_COMMIT + "@3", None),
        (crashpoints.SINK_AFTER_COMMIT_BEFORE_PUBLISH + "@2", None),
        (None, 3),
    ],
)
def test_driver_killed_and_recovered_with_get_or_create_commits_each_batch_once(tmp_path, crash, kill_after):
    ckpt, in_dir, out_dir = tmp_path / "ckpt", tmp_path / "in", tmp_path / "out"
    write_inputs(in_dir)
    dirs = [str(ckpt), str(in_dir), str(out_dir)]
    delay_s = random.Random(f"{SEED}-{crash}-{kill_after}").uniform(0, 0.05)
    rc, acks = run_driver("first", dirs, crash, kill_after, delay_s)
    assert rc == -signal.SIGKILL
    reader = TransactionalFileSink(str(out_dir), output_id="words")
    after_kill = reader.read_committed()
    expected = expected_output()
    assert set(acks) <= set(after_kill) and len(after_kill) <= len(acks) + 1
    assert after_kill == {t: expected[t] for t in after_kill}

    rc, _ = run_driver("recover", dirs, None, None, 0)
    assert rc == 0
    assert reader.read_committed() == expected
    assert CommitLog(str(out_dir / "_sink")).committed("words") == sorted(expected)
    assert not [p for p in (out_dir / "_staging").rglob("*") if p.is_file()]
