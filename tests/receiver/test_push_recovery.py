"""Push exactly-once across receiver-WAL cleanup and restarts, and across several streams' cleanups."""

from __future__ import annotations

import pickle
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dstream.client import PushClient
from dstream.clock import ManualClock
from dstream.config import ReceiverConfig
from dstream.errors import DStreamStateError
from dstream.rdd.storage import StorageLevel
from dstream.receiver.block_handler import (
    BlockRecord,
    BlockRecordError,
    StateRecord,
    WriteAheadLogHandler,
    decode_log_record,
    encode_state_record,
)
from dstream.receiver.block_rdd import block_refs, read_block
from dstream.receiver.block_store import ReceivedBlocks
from dstream.receiver.push import PushReceiver
from dstream.receiver.push_protocol import ACK, Hello, decode_ack, encode_data, encode_hello, read_frame
from dstream.receiver.received_block_tracker import ReceivedBlockInfo
from dstream.receiver.receiver_tracker import ReceiverTracker, receiver_wal_url
from tests.receiver.helpers import WAIT_S, wait_for
from wal import open_wal

CONFIG = ReceiverConfig.from_conf(wal_enabled=True, restart_delay_ms=1, wal_rolling_interval_ms=1000)


class Driver:
    """A ReceiverTracker with one push receiver per stream on a checkpoint directory (one "process")."""

    def __init__(self, ckpt: str, clock: ManualClock, ports: dict[int, int], recover: bool) -> None:
        self.tracker = ReceiverTracker(clock, CONFIG, checkpoint_dir=ckpt, recover=recover)
        self.receivers = {s: PushReceiver(port=port) for s, port in ports.items()}
        for stream_id, receiver in self.receivers.items():
            self.tracker.add_receiver(stream_id, receiver)
        self.tracker.start()
        for receiver in self.receivers.values():
            wait_for(receiver.isStarted)

    def port(self, stream_id: int) -> int:
        return self.receivers[stream_id].port

    def unallocated_records(self, stream_id: int) -> list[Any]:
        infos = self.tracker.block_tracker.get_unallocated_blocks(stream_id)
        refs = block_refs(infos, self.tracker.wal_location(stream_id))
        return [r for ref in refs for r in read_block(ref, self.tracker.executor)]


@pytest.fixture
def drivers() -> Iterator[list[Driver]]:
    started: list[Driver] = []
    yield started
    for driver in started:
        driver.tracker.stop()


def logged(ckpt: str, stream_id: int) -> list[BlockRecord | StateRecord]:
    handler = WriteAheadLogHandler(
        open_wal(receiver_wal_url(ckpt, stream_id)),
        stream_id,
        ManualClock(0),
        StorageLevel.MEMORY_ONLY,
        blocks=ReceivedBlocks(),
    )
    return handler.read_all_records()


def test_producer_sequences_survive_receiver_wal_cleanup_and_restart(
    tmp_path: Path, drivers: list[Driver]
) -> None:
    ckpt, clock = str(tmp_path / "ckpt"), ManualClock(1_000_000)
    first = Driver(ckpt, clock, {0: 0}, recover=False)
    drivers.append(first)
    port = first.port(0)
    client = PushClient("127.0.0.1", port, "p1", timeout_s=10, retries_max=3)
    assert client.send(["a", "b", "c"]) == 2
    clock.advance(1000)
    first.tracker.allocate_blocks_to_batch(clock.time_ms())  # the batch that read a, b, c is done
    clock.advance(5000)  # past the rolling interval: the block's segment is old enough to clean
    first.tracker.cleanup_old_blocks_and_batches(clock.time_ms() - 500, wait=True)
    first.tracker.stop()
    # The block that carried p1's range is gone; what remains is the state snapshot.
    records = logged(ckpt, 0)
    assert not [r for r in records if isinstance(r, BlockRecord)]
    # The session record written when the client opened its epoch was cleaned too: the snapshot holds it.
    assert [r.state for r in records if isinstance(r, StateRecord)] == [
        {"durable": {"p1": 2}, "sessions": {"p1": [1, Hello("p1", client.session_token, False).session_id]}}
    ]

    second = Driver(ckpt, clock, {0: port}, recover=True)
    drivers.append(second)
    assert second.receivers[0].durable_seq("p1") == 2
    assert client.send(["d"]) == 3  # the existing client reconnects and continues: no false gap
    with PushClient("127.0.0.1", port, "p1", timeout_s=10) as fresh:
        assert fresh.send(["e"]) == 4  # a new client for the producer continues after the last ack
    with socket.create_connection(("127.0.0.1", port), timeout=10) as stale:  # a stale resend of seq 0..2
        stale.sendall(encode_hello("p1"))
        assert read_frame(stale, 1 << 20) is not None
        stale.sendall(encode_data(0, ["a", "b", "c"]))
        frame = read_frame(stale, 1 << 20)
        assert frame is not None and frame.kind == ACK and decode_ack(frame.payload) == 4
    client.close()
    assert second.unallocated_records(0) == ["d", "e"]  # exactly once: a, b, c were in the cleaned batch


def test_another_streams_cleanup_does_not_hide_an_unreported_block(
    tmp_path: Path, drivers: list[Driver]
) -> None:
    ckpt, clock = str(tmp_path / "ckpt"), ManualClock(1000)
    # Stream 1's block reached its receiver WAL at 1000 ms; the tracker never heard of it (crash window).
    log = open_wal(receiver_wal_url(ckpt, 1))
    handler = WriteAheadLogHandler(log, 1, clock, StorageLevel.MEMORY_ONLY, blocks=ReceivedBlocks())
    handler.store_block("orphan-s1", ["x0", "x1"], {"producers": {"px": [0, 1]}})
    log.close()
    first = Driver(ckpt, clock, {0: 0}, recover=False)
    drivers.append(first)
    clock.set_time(1500)
    with PushClient("127.0.0.1", first.port(0), "p") as client:
        client.send(["s0"])  # stream 0's block at 1500, allocated and cleaned below
    clock.set_time(2000)
    first.tracker.allocate_blocks_to_batch(2000)
    clock.set_time(3000)
    first.tracker.cleanup_old_blocks_and_batches(2500, wait=True)
    first.tracker.stop()
    assert first.tracker.block_tracker.cleaned_written_max_ms(0) == 1500
    assert first.tracker.block_tracker.cleaned_written_max_ms(1) == -1

    second = Driver(ckpt, clock, {0: 0, 1: 0}, recover=True)
    drivers.append(second)
    assert second.unallocated_records(1) == ["x0", "x1"]  # adopted
    assert second.receivers[1].durable_seq("px") == 1
    assert second.unallocated_records(0) == []  # stream 0's cleaned block is not delivered again


def test_an_orphan_too_old_to_adopt_does_not_mark_its_records_durable(
    tmp_path: Path, drivers: list[Driver]
) -> None:
    ckpt, clock = str(tmp_path / "ckpt"), ManualClock(1000)
    log = open_wal(receiver_wal_url(ckpt, 1))
    handler = WriteAheadLogHandler(log, 1, clock, StorageLevel.MEMORY_ONLY, blocks=ReceivedBlocks())
    handler.store_block("orphan-s1", ["x0", "x1"], {"producers": {"px": [0, 1]}})
    log.close()
    # Meanwhile the tracker cleans a later block of stream 1: the orphan can no longer be told from a
    # cleaned block, so it is not adopted, and its records are in no batch.
    first = Driver(ckpt, clock, {0: 0}, recover=False)
    drivers.append(first)
    first.tracker.block_tracker.add_block(ReceivedBlockInfo(1, "later-s1", 1, None, None, True, 1500))
    clock.set_time(2000)
    first.tracker.allocate_blocks_to_batch(2000)
    clock.set_time(3000)
    first.tracker.cleanup_old_blocks_and_batches(2500, wait=True)
    first.tracker.stop()

    second = Driver(ckpt, clock, {1: 0}, recover=True)
    drivers.append(second)
    assert second.unallocated_records(1) == []
    # The producer never got its ack, so it resends: the records must be stored, not acked as duplicates.
    assert second.receivers[1].durable_seq("px") == -1
    with PushClient("127.0.0.1", second.port(1), "px", timeout_s=10) as client:
        assert client.send(["x0", "x1"]) == 1
    assert second.unallocated_records(1) == ["x0", "x1"]


def test_state_record_matches_its_golden_file_and_layout() -> None:
    golden = (Path(__file__).parent / "golden" / "receiver-state-v1.bin").read_bytes()
    record = StateRecord(2, 1500, {"durable": {"p": 9}})
    assert encode_state_record(record) == golden
    assert golden[:4] == b"RST\x01" and pickle.loads(golden[4:]) == (2, 1500, {"durable": {"p": 9}})
    assert decode_log_record(golden) == record
    with pytest.raises(BlockRecordError, match="version 2"):
        decode_log_record(b"RST\x02" + golden[4:])


class GatedReads:
    """A receiver WAL whose reads wait for `gate`: a receiver whose recovery is slow, as when its reads
    hit storage errors and are retried (the `wal` case of
    tests/chaos/storage_faults/test_push_under_faults.py)."""

    def __init__(self, wrapped: Any, gate: threading.Event) -> None:
        self.wrapped, self.gate = wrapped, gate

    def read_all(self) -> Any:
        assert self.gate.wait(WAIT_S), "the test never opened the gate"
        return self.wrapped.read_all()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def test_a_cleanup_while_a_restored_receiver_is_still_recovering_keeps_its_acknowledged_sequence(
    tmp_path: Path,
) -> None:
    """The restored receiver holds the producer state pickled in the last checkpoint, which misses what
    was acknowledged after it. A cleanup that ran before the receiver had read its WAL used to write that
    stale state as the snapshot and then forget the blocks holding the truth: the receiver then answered
    its producer with a durable seq one frame short and refused the next frame as a gap. The cleanup
    now waits for the receiver's recovery."""
    ckpt, clock = str(tmp_path / "ckpt"), ManualClock(1_000_000)
    first = Driver(ckpt, clock, {0: 0}, recover=False)
    port = first.port(0)
    client = PushClient("127.0.0.1", port, "p1", timeout_s=10)
    try:
        assert client.send(["a"]) == 0
        checkpointed = pickle.dumps(first.receivers[0])  # the graph in the last metadata checkpoint
        assert client.send(["b"]) == 1  # acknowledged after that checkpoint
        clock.advance(1000)
        first.tracker.allocate_blocks_to_batch(clock.time_ms())  # the batch of a and b (it completes)
        first.tracker.stop()  # the driver dies

        gate = threading.Event()
        second = ReceiverTracker(
            clock, CONFIG, checkpoint_dir=ckpt, recover=True,
            receiver_wal_wrapper=lambda stream_id, log: GatedReads(log, gate),
        )  # fmt: skip
        restored: PushReceiver = pickle.loads(checkpointed)
        second.add_receiver(0, restored)
        second.start()
        try:
            clock.advance(5000)  # the batch of a and b is done and checkpointed: its blocks may go
            with pytest.raises(DStreamStateError, match=r"deferred: the receivers of streams \[0\]"):
                second.cleanup_old_blocks_and_batches(clock.time_ms() - 500, wait=True)
            gate.set()  # the receiver's recovery reads its WAL now
            wait_for(restored.isStarted)
            second.cleanup_old_blocks_and_batches(clock.time_ms() - 500, wait=True)  # now it may
            assert restored.durable_seq("p1") == 1
            assert [r.state["durable"] for r in logged(ckpt, 0) if isinstance(r, StateRecord)][-1] == {
                "p1": 1
            }
            assert client.send(["c"]) == 2  # no false gap
            assert unallocated(second) == ["c"]  # a and b were in the cleaned batch
        finally:
            gate.set()
            second.stop()
    finally:
        client.close()


def unallocated(tracker: ReceiverTracker) -> list[Any]:
    infos = tracker.block_tracker.get_unallocated_blocks(0)
    refs = block_refs(infos, tracker.wal_location(0))
    return [r for ref in refs for r in read_block(ref, tracker.executor)]
