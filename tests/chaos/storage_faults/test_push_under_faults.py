"""Exactly-once end to end under storage faults: push client -> receiver WAL -> transactional sink, with
the checkpoint directory (receiver WAL, tracker WAL, metadata, lease) and the sink's output both on
``faulty::file://`` URLs, transient errors, SlowDown, torn writes and ENOSPC by seeded plan, and the
driver SIGKILLed once. Every acknowledged record is committed exactly once (tests/e2e's pipeline).

With faults on the WALs the receiver used to stop listening for 30 s and more (a store whose tracker
report failed stops the supervisor, as designed, and each restart's read of the receiver WAL hit a
transient error and doubled the restart delay); the read now retries transient errors and a successful
start resets the back-off (tests/receiver/test_receiver_restarts.py is the fast version). It was a
non-strict xfail for two rarer failures: every driver restart failing on a read of the tracker's WAL
during recovery (recovery's reads are retried since), and a receiver that after a driver restart told
its producer a durable sequence number one frame short of what it had acknowledged, then refused the
next frame as a gap. That one was a cleanup that ran while the restored receiver was still recovering
(its reads retried under the faults): it snapshotted the producer state pickled in the last checkpoint,
which missed the frames acknowledged since, and then forgot the blocks that held them; the cleanup now
waits for every receiver's recovery
(`test_a_cleanup_while_a_restored_receiver_is_still_recovering_keeps_its_acknowledged_sequence` in
tests/receiver/test_push_recovery.py is the deterministic version).
The plan spares truncation. When a failed WAL append cannot be cut back either, the next write first
truncates the torn tail as a reopen does; before that fix the WAL refused every write until reopened
and nothing in the engine reopened it, so the driver stopped making progress while it lived
(`test_a_wal_whose_rollback_failed_recovers_on_the_next_write`).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from chaos.storage_faults import ENV_VAR, LOG_ENV_VAR
from dstream.client import PushClient
from tests.e2e import test_push_to_sink_sigkill as e2e
from tests.support.s3servers import free_port

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

RESTARTS_MAX = 8
UNTRUNCATED = ["reads", "open_append", "append", "fsync", "fsync_dir", "create_once", "publish", "delete"]
UNTRUNCATED += ["make_dirs", "rename_dir", "lock"]
ROLES_BUT_WAL = ["checkpoint", "sink", "lease", "other"]


def plan(roles: list[str]) -> dict[str, object]:
    return {
        "format": "dstream-storage-faults",
        "version": 1,
        "seed": 515,
        "rules": [
            {"fault": "error", "probability": 0.02, "ops": UNTRUNCATED, "roles": roles},
            {"fault": "slowdown", "probability": 0.01, "ops": ["reads"], "roles": roles},
            {"fault": "torn", "probability": 0.02, "roles": roles},
            {"fault": "enospc", "probability": 0.01, "roles": roles},
            {"fault": "latency", "probability": 0.1, "latency_ms": 10},
        ],
    }


class FaultyDriver(e2e.Driver):
    """The e2e driver on faulty URLs; each incarnation has its own plan seed, and one that a storage
    error stops (cleanly, with an error) is restarted like one that was killed."""

    def __init__(self, tmp: Path, port: int, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.incarnations = 0
        self.error_exits = 0
        super().__init__(tmp, port, None)

    def _spawn(self, crash_point: str | None) -> subprocess.Popen[str]:
        self.args[:2] = [f"faulty::file://{self.tmp}/ckpt", f"faulty::file://{self.tmp}/out"]
        os.environ[ENV_VAR] = json.dumps({**self.plan, "seed": self.plan["seed"] + self.incarnations})
        self.incarnations += 1
        return super()._spawn(crash_point)

    def _restart_on_death(self) -> None:
        while not self._stopping.is_set():
            code = self._proc.wait()
            with self._lock:
                if self._stopping.is_set() or self.deaths >= RESTARTS_MAX:
                    return
                self.error_exits += code > 0
                self.deaths += 1
                self._proc = self._spawn(None)


@pytest.mark.parametrize(
    "roles",
    [
        pytest.param(ROLES_BUT_WAL, id="checkpoint-sink-lease"),
        pytest.param(["wal"], id="wal"),
    ],
)
def test_every_acknowledged_record_is_committed_once_under_storage_faults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, roles: list[str]
) -> None:
    monkeypatch.setenv(ENV_VAR, "")  # restored afterwards; each spawn sets its incarnation's plan
    monkeypatch.setenv(LOG_ENV_VAR, str(tmp_path / "faults.jsonl"))
    driver = FaultyDriver(tmp_path, free_port(), plan(roles))
    rng = random.Random(515)
    sent: list[str] = []
    try:
        with PushClient("127.0.0.1", driver.port, "e2e", timeout_s=e2e.WAIT_S, retries_max=500) as client:
            for n, frame in enumerate(e2e.frames()):
                if n == 11:
                    threading.Event().wait(rng.uniform(0, 0.3))  # a random instant inside a batch
                    driver.kill()
                client.send(frame)
                sent.extend(frame)
                if n % e2e.PACE_FRAMES == e2e.PACE_FRAMES - 1:
                    e2e.wait_for_commits(tmp_path / "out", len(sent))
        e2e.wait_for_commits(tmp_path / "out", len(sent))
    finally:
        code = driver.stop()
    assert code == 0, driver.log_tail()
    ids = e2e.committed_ids(tmp_path / "out")
    lost = sorted(set(sent) - set(ids))
    duplicated = sorted(i for i, c in Counter(ids).items() if c > 1)
    unexpected = sorted(set(ids) - set(sent))
    assert (lost, duplicated, unexpected) == ([], [], []), driver.log_tail()
    faults = Counter(
        json.loads(line)["fault"] for line in (tmp_path / "faults.jsonl").read_text().splitlines()
    )
    assert faults["error"] and faults["torn"], faults  # the faults really happened


WEDGE = {
    "format": "dstream-storage-faults",
    "version": 1,
    "seed": 1,
    "rules": [  # one receiver WAL append fails, and so does cutting it back
        {"fault": "error", "ops": ["append"], "paths": ["*/receivedData/*"], "after": 5, "count_max": 1},
        {"fault": "error", "ops": ["truncate_open"], "paths": ["*/receivedData/*"], "count_max": 1},
    ],
}


def test_a_wal_whose_rollback_failed_recovers_on_the_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, "")
    monkeypatch.setenv(LOG_ENV_VAR, str(tmp_path / "faults.jsonl"))
    driver = FaultyDriver(tmp_path, free_port(), WEDGE)
    sent: list[str] = []
    try:
        with PushClient("127.0.0.1", driver.port, "e2e", timeout_s=20.0, retries_max=100) as client:
            for frame in e2e.frames()[:10]:
                client.send(frame)
                sent.extend(frame)
        e2e.wait_for_commits(tmp_path / "out", len(sent))
    finally:
        code = driver.stop()
    assert code == 0, driver.log_tail()
    assert driver.deaths == 0, driver.log_tail()  # the same driver went on: no restart hid the wedge
    assert sorted(e2e.committed_ids(tmp_path / "out")) == sorted(sent)
    faults = [json.loads(line) for line in (tmp_path / "faults.jsonl").read_text().splitlines()]
    assert sorted(f["op"] for f in faults) == ["append", "truncate_open"], faults  # both really happened
