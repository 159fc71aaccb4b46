"""A driver that lost its checkpoint directory's lease acknowledges nothing more: the receiver tracker
checks the fence around every block record, so a block stored while fenced is never reported stored
and its producer is never told it is durable (it resends to the successor instead)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from checkpoint.errors import DriverLeaseError
from dstream.client import PushClient, PushError
from dstream.clock import SystemClock
from dstream.config import ReceiverConfig
from dstream.receiver.block_rdd import block_refs, read_block
from dstream.receiver.push import PushReceiver
from dstream.receiver.receiver_tracker import ReceiverTracker
from tests.receiver.helpers import wait_for

STREAM = 0
CONFIG = ReceiverConfig.from_conf(wal_enabled=True, restart_delay_ms=1)


class Fence:
    def __init__(self) -> None:
        self.fenced = threading.Event()
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.fenced.is_set():
            raise DriverLeaseError("driver 'test' was fenced: another driver took over")


def test_a_fenced_driver_acknowledges_no_block(tmp_path: Path) -> None:
    fence = Fence()
    tracker = ReceiverTracker(SystemClock(), CONFIG, checkpoint_dir=str(tmp_path / "ckpt"), fence=fence)
    receiver = PushReceiver(port=0)
    tracker.add_receiver(STREAM, receiver)
    tracker.start()
    client: PushClient | None = None
    try:
        wait_for(receiver.isStarted)
        client = PushClient("127.0.0.1", receiver.port, "p", timeout_s=3, retries_max=2)
        assert client.send(["a", "b"]) == 1
        assert fence.calls >= 2  # before and after the block record
        fence.fenced.set()
        with pytest.raises(PushError):
            client.send(["c"])
        infos = tracker.block_tracker.get_unallocated_blocks(STREAM)
        stored = [
            r
            for ref in block_refs(infos, tracker.wal_location(STREAM))
            for r in read_block(ref, tracker.executor)
        ]
        assert stored == ["a", "b"]
    finally:
        if client is not None:
            client.close()
        tracker.stop()
