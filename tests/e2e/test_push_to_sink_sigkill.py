"""Exactly-once end to end: a push client -> receiver with WAL -> transactional file sink, driver SIGKILLed.

The driver (a child process) is killed at random moments and at named crash points of the checkpoint and
sink protocols, and restarted with getOrCreate on the same checkpoint directory and port by a monitor
thread. One PushClient keeps sending throughout; it resends unacknowledged frames with the same
sequence numbers until they are acknowledged. At the end the committed output must hold every record
exactly once: nothing lost (every acknowledged record is committed) and nothing twice.

The first metadata checkpoint is the context's initial one, durable before the receiver starts: killed
while publishing it, the driver has acknowledged nothing and restarts anew; killed after it (at the
first batch's publish, or right after the first acknowledgements), it recovers and replays what it
acknowledged.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from dstream.client import PushClient
from dstream.sinks import TransactionalFileSink
from tests.e2e.push_sink_child import OUTPUT_ID
from tests.support.children import port_other_than
from tests.support.s3servers import free_port

ROOT = Path(__file__).resolve().parents[2]
FRAMES_N = 24
PACE_FRAMES = 2  # wait for commits every PACE_FRAMES frames, so records spread over many batches
RECORDS_PER_FRAME = 20
RESTARTS_MAX = 3
WAIT_S = 60.0

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


class Driver:
    """The child driver process; a monitor thread restarts it (getOrCreate) whenever it dies.

    With `move`, each restart puts the push receiver on a new port and the child writes it to
    `port_file` (a receiver that moved, issue 14); `ports` lists the ports used, in order.
    """

    def __init__(self, tmp: Path, port: int, crash_point: str | None, move: bool = False) -> None:
        self.tmp, self.port, self.move = tmp, port, move
        self.port_file = tmp / "port"
        self.args = [str(tmp / "ckpt"), str(tmp / "out"), str(port), str(tmp / "stop")]
        self.args += [str(self.port_file)] if move else []
        self.ports = [port]
        self.deaths = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._proc = self._spawn(crash_point)
        self._monitor = threading.Thread(target=self._restart_on_death, daemon=True)
        self._monitor.start()

    def _spawn(self, crash_point: str | None) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if k != "DSTREAM_CRASH_POINT"}
        if crash_point:
            env["DSTREAM_CRASH_POINT"] = crash_point
        with (self.tmp / f"driver-{self.deaths}.log").open("w") as log:  # the child keeps its own fd
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.e2e.push_sink_child", *self.args],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
            )  # fmt: skip
        assert proc.stdout is not None
        with proc.stdout:  # the child prints one line only
            proc.stdout.readline()  # "started" once the receiver listens, or EOF if it died first
        return proc

    def _restart_on_death(self) -> None:
        while not self._stopping.is_set():
            code = self._proc.wait()
            with self._lock:
                if self._stopping.is_set() or self.deaths >= RESTARTS_MAX:
                    return
                assert code == -signal.SIGKILL, f"driver exited {code}: {self.log_tail()}"
                self.deaths += 1
                if self.move:
                    self.port = port_other_than(self.port)
                    self.args[2] = str(self.port)
                    self.ports.append(self.port)
                self._proc = self._spawn(None)

    def kill(self) -> None:
        with self._lock:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGKILL)

    def log_tail(self) -> str:
        return "".join(p.read_text()[-2000:] for p in sorted(self.tmp.glob("driver-*.log")))

    def stop(self) -> int:
        with self._lock:
            self._stopping.set()
            (self.tmp / "stop").touch()
            proc = self._proc
        proc.wait(timeout=WAIT_S)
        self._monitor.join(timeout=WAIT_S)
        return proc.returncode


def frames() -> list[list[str]]:
    return [[f"r{f:03d}-{i:02d}" for i in range(RECORDS_PER_FRAME)] for f in range(FRAMES_N)]


def committed_ids(out: Path) -> list[str]:
    batches = TransactionalFileSink(str(out), output_id=OUTPUT_ID).read_committed()
    return [rec["id"] for _, records in sorted(batches.items()) for rec in records]


def wait_for_commits(out: Path, expected_n: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and len(committed_ids(out)) < expected_n:
        time.sleep(0.1)  # polling another process's output: there is no event to wait on


@pytest.mark.parametrize(
    ("crash_point", "kill_after_frames"),
    [
        (None, 1),  # right after the first acknowledgements: only the initial checkpoint is durable
        (None, 7),
        (None, 19),
        ("metadata.after_write_before_publish@1", None),  # the initial checkpoint: nothing acknowledged yet
        ("metadata.after_write_before_publish@2", None),  # the first batch's: acknowledged, not yet run
        ("sink.after_stage_before_commit@4", None),
        ("sink.after_commit_before_publish@3", None),
        ("metadata.after_write_before_publish@5", None),
        ("metadata.after_publish_before_callback@9", None),
    ],
)
def test_every_pushed_record_is_committed_exactly_once_across_driver_kills(
    tmp_path: Path, crash_point: str | None, kill_after_frames: int | None
) -> None:
    driver = Driver(tmp_path, free_port(), crash_point)
    rng = random.Random(f"{crash_point}-{kill_after_frames}")
    sent: list[str] = []
    try:
        with PushClient("127.0.0.1", driver.port, "e2e", timeout_s=WAIT_S, retries_max=500) as client:
            for n, frame in enumerate(frames()):
                if n == kill_after_frames:
                    time.sleep(rng.uniform(0, 0.3))  # a random instant inside a batch
                    driver.kill()
                client.send(frame)  # retried across the restart until acknowledged
                sent.extend(frame)
                if n % PACE_FRAMES == PACE_FRAMES - 1:
                    wait_for_commits(tmp_path / "out", len(sent))
        wait_for_commits(tmp_path / "out", len(sent))
    finally:
        code = driver.stop()
    assert code == 0, driver.log_tail()
    assert driver.deaths >= 1, "the driver never died: the test proved nothing"
    ids = committed_ids(tmp_path / "out")
    lost = sorted(set(sent) - set(ids))
    duplicated = sorted(i for i, c in Counter(ids).items() if c > 1)
    unexpected = sorted(set(ids) - set(sent))
    assert (lost, duplicated, unexpected) == ([], [], []), driver.log_tail()
    assert len(ids) == FRAMES_N * RECORDS_PER_FRAME
