"""The receiver WALs are opened with the checkpoint key: a planted block record is refused before unpickling.

Both ways a receiver WAL is read are covered: the supervisor's recovery (`read_all_records` on the log
the tracker opened) and a block RDD task reading one block by handle through the executor's registry.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from dstream.backends.executor_env import ExecutorEnv
from dstream.clock import ManualClock
from dstream.config import ReceiverConfig
from dstream.receiver.block_handler import BlockRecord, decode_log_record, encode_block_record
from dstream.receiver.receiver_tracker import ReceiverTracker, receiver_wal_url
from dstream.receiver.wal_registry import ReceiverWALs
from wal import RecordAuthenticationError, open_wal


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.marker,))


def planted_block(marker: Path) -> bytes:
    """A receiver block record (magic, version) whose pickle would create `marker`."""
    return b"RBK\x01" + pickle.dumps(Payload(marker), protocol=5)


@pytest.fixture(autouse=True)
def keyed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSTREAM_CHECKPOINT_KEY", "receiver-wal-test-secret")
    monkeypatch.delenv("DSTREAM_CHECKPOINT_KEY_ID", raising=False)


def test_recovery_of_a_receiver_wal_refuses_a_planted_record(tmp_path: Path) -> None:
    ckpt, marker = str(tmp_path / "ckpt"), tmp_path / "pwned"
    config = ReceiverConfig(wal_enabled=True)
    tracker = ReceiverTracker(ManualClock(0), config, checkpoint_dir=ckpt, executor=ExecutorEnv("t1"))
    genuine = BlockRecord(0, "block-0", 5, None, ["a", "b"])
    tracker.receiver_wal(0).write(encode_block_record(genuine), 5)
    tracker.stop()
    with open_wal(receiver_wal_url(ckpt, 0)) as attacker:  # no key: a new, unauthenticated segment
        attacker.write(planted_block(marker), 6)

    restarted = ReceiverTracker(ManualClock(0), config, checkpoint_dir=ckpt, executor=ExecutorEnv("t2"))
    log = restarted.receiver_wal(0)
    records = log.read_all()
    assert decode_log_record(next(records)) == genuine
    with pytest.raises(
        RecordAuthenticationError, match=r"receivedData/0/log-\d{10}-6-\d+.*not authenticated"
    ):
        next(records)
    restarted.stop()
    assert not marker.exists()


def test_a_block_read_by_handle_refuses_a_planted_record(tmp_path: Path) -> None:
    url, marker = str(tmp_path / "receivedData" / "0"), tmp_path / "pwned"
    with open_wal(url) as attacker:
        handle = attacker.write(planted_block(marker), 6)
    registry = ReceiverWALs()
    with pytest.raises(RecordAuthenticationError, match=rf"log-\d{{10}}-6-\d+.*offset {handle.offset}"):
        registry.for_reading(url).read(handle)
    registry.close()
    assert not marker.exists()
