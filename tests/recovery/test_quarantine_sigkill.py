"""SIGKILL right after a poison batch's quarantine file is published and before the checkpoint that
stops the batch being pending: after a restart the batch is quarantined once, not twice, not lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from checkpoint.metadata import list_checkpoints, read_checkpoint
from checkpoint.quarantine import Quarantine
from tests.recovery.quarantine_child import BATCHES, POISON_BATCH_MS
from tests.recovery.support import BATCH_MS
from wal.crashpoints import ENV_VAR, QUARANTINE_AFTER_WRITE

pytestmark = pytest.mark.chaos

REPO = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 120.0


def run_child(path: str, start_ms: int, last_ms: int, crash: str | None) -> tuple[int, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(ENV_VAR, None)
    if crash:
        env[ENV_VAR] = crash
    proc = subprocess.run(
        [sys.executable, "-m", "tests.recovery.quarantine_child", path, str(start_ms), str(last_ms)],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.decode()[-3000:]
    return proc.returncode, proc.stdout.decode().splitlines()


def test_sigkill_after_the_quarantine_write_quarantines_the_batch_once(tmp_path: Path) -> None:
    path = str(tmp_path / "ckpt")
    rc, lines = run_child(path, 0, 6 * BATCH_MS, crash=QUARANTINE_AFTER_WRITE)
    assert rc == -signal.SIGKILL, f"the crash point was not reached: {lines}"
    assert lines == ["ack 1000", "ack 2000"]
    quarantine = Quarantine(path)
    assert quarantine.batch_times() == [POISON_BATCH_MS]
    file = tmp_path / "ckpt" / "quarantine" / f"batch-{POISON_BATCH_MS:020d}.json"
    written = file.read_bytes()
    newest = read_checkpoint(path, list_checkpoints(path)[-1])
    assert POISON_BATCH_MS not in newest.extra.get("quarantined_batches", [])  # not recorded yet

    rc, lines = run_child(path, POISON_BATCH_MS, 6 * BATCH_MS, crash=None)
    assert rc == 0
    assert lines[:-1] == [f"ack {t}" for t in range(POISON_BATCH_MS, 6 * BATCH_MS + 1, BATCH_MS)]
    result = json.loads(lines[-1].removeprefix("result "))
    assert result["quarantined"] == [POISON_BATCH_MS]  # the re-run failed again and found the file
    assert POISON_BATCH_MS not in result["pending"]

    assert quarantine.batch_times() == [POISON_BATCH_MS]
    assert file.read_bytes() == written  # kept as the first driver wrote it: quarantined once
    batch = quarantine.get(POISON_BATCH_MS)
    assert batch is not None and batch.attempts == 3
    assert [sorted(recs) for recs in batch.records.values()] == [sorted(BATCHES[2])]
    newest = read_checkpoint(path, list_checkpoints(path)[-1])
    assert newest.extra["quarantined_batches"] == [POISON_BATCH_MS]
    assert POISON_BATCH_MS not in newest.pending_batches
    assert newest.wal_needed_from_ms > POISON_BATCH_MS
