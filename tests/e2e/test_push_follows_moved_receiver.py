"""A push receiver that moves, end to end: the driver is SIGKILLed mid-stream and restarted with
getOrCreate, and its recovered push receiver listens on ANOTHER port (what happens when the Dask worker
hosting a receiver dies and the driver starts it on another worker, issue 14). One PushClient with a
resolver (reading the port file the driver child writes) keeps sending throughout, keeping its producer
session: every acknowledged record is committed exactly once, nothing lost and nothing twice.

The pipeline, driver child and monitor are tests/e2e's (push_sink_child.py with a PORT_FILE, and
`Driver(move=True)` of test_push_to_sink_sigkill.py).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest

from dstream.client import PushClient
from tests.e2e.test_push_to_sink_sigkill import WAIT_S, Driver, committed_ids, frames, wait_for_commits
from tests.support.s3servers import free_port

pytestmark = [pytest.mark.chaos]


@pytest.mark.parametrize(
    ("crash_point", "kill_after_frames"),
    [
        (None, 7),  # a random instant inside a batch, after some batches committed
        pytest.param(None, 1, marks=pytest.mark.slow),  # right after the first acknowledgements
        pytest.param("sink.after_stage_before_commit@4", None, marks=pytest.mark.slow),
        pytest.param("metadata.after_write_before_publish@5", None, marks=pytest.mark.slow),
    ],
)
def test_a_client_with_a_resolver_follows_the_receiver_to_its_new_port_exactly_once(
    tmp_path: Path, crash_point: str | None, kill_after_frames: int | None
) -> None:
    driver = Driver(tmp_path, free_port(), crash_point, move=True)
    rng = random.Random(f"move-{crash_point}-{kill_after_frames}")

    def resolver() -> tuple[str, int]:
        return ("127.0.0.1", int(driver.port_file.read_text()))

    sent: list[str] = []
    try:
        with PushClient(resolver=resolver, producer_id="e2e", timeout_s=WAIT_S, retries_max=500) as client:
            for n, frame in enumerate(frames()):
                if n == kill_after_frames:
                    time.sleep(rng.uniform(0, 0.3))  # a random instant inside a batch
                    driver.kill()
                client.send(frame)  # retried, at the resolver's answer, until acknowledged
                sent.extend(frame)
                if n % 2 == 1:
                    wait_for_commits(tmp_path / "out", len(sent))  # spread records over many batches
            moved_to, epoch = client.port, client.epoch
        wait_for_commits(tmp_path / "out", len(sent))
    finally:
        code = driver.stop()
    assert code == 0, driver.log_tail()
    assert driver.deaths >= 1 and len(set(driver.ports)) >= 2, "the receiver never moved: proved nothing"
    assert (moved_to, epoch) == (driver.ports[-1], 1)  # the client followed it, in its one session
    ids = committed_ids(tmp_path / "out")
    lost = sorted(set(sent) - set(ids))
    duplicated = sorted(i for i, c in Counter(ids).items() if c > 1)
    unexpected = sorted(set(ids) - set(sent))
    assert (lost, duplicated, unexpected) == ([], [], []), driver.log_tail()
    assert len(ids) == len(sent)
