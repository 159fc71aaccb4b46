"""Durability of push acks: SIGKILL the receiver's process right after an ack; the record is there after.

The parent pushes frames and SIGKILLs the child as soon as an ACK arrives, with one more frame sent but
not acknowledged. A new child recovers from the same checkpoint directory (tracker replay from the metadata
WAL, producer sequence numbers from the receiver WAL). Every acknowledged record must be there, exactly
once; the parent then resends from its unacknowledged point, and an already acknowledged frame, and the
receiver deduplicates both. In the last test the new child listens on another port (a receiver that
moved, issue 14) and the client finds it through a resolver.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from dstream.client import PushClient
from dstream.receiver.push_protocol import (
    ACK,
    ERROR,
    SESSION,
    decode_ack,
    decode_session,
    encode_data,
    encode_hello,
    new_session_token,
    read_frame,
)
from tests.support.children import port_other_than

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 30.0
FRAME_RECORDS = 20


class Child:
    def __init__(self, ckpt: Path, port: int | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.receiver.push_child", str(ckpt), *([str(port)] if port else [])],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = int(self._read_json()["port"])

    def _read_json(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # bounded by the test's timeout marker
        assert line, f"child exited with {self.proc.poll()}"
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def dump(self) -> list[str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("dump\n")
        self.proc.stdin.flush()
        records: list[str] = self._read_json()["records"]
        return records

    def hold_tracker(self) -> None:
        """Make the next tracker write hang (see push_child)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("hold\n")
        self.proc.stdin.flush()
        assert self._read_json() == {"armed": True}

    def command(self, line: str, expected: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        assert self._read_json() == expected

    def wait_held(self) -> None:
        assert self._read_json() == {"held": True}

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(TIMEOUT_S)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def frame_records(n: int) -> list[str]:
    return [f"f{n}-r{i}" for i in range(FRAME_RECORDS)]


def ack_of(sock: socket.socket) -> int:
    """The durable seq of an ACK, or of a SESSION (the reply to HELLO)."""
    frame = read_frame(sock, 1 << 20)
    assert frame is not None and frame.kind in (ACK, SESSION)
    return decode_ack(frame.payload) if frame.kind == ACK else decode_session(frame.payload)[1]


@pytest.mark.chaos
@pytest.mark.timeout(120)
def test_acked_pushes_survive_sigkill_and_resends_are_deduplicated(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    token = new_session_token()  # one session across the kill: its epoch is durable with its state
    first = Child(ckpt)
    try:
        sock = socket.create_connection(("127.0.0.1", first.port), timeout=TIMEOUT_S)
        sock.sendall(encode_hello("producer-1", token))
        assert ack_of(sock) == -1
        acked = -1
        for n in range(5):
            sock.sendall(encode_data(n * FRAME_RECORDS, frame_records(n)))
            acked = ack_of(sock)
        # Frame 5 goes out, and the process dies right after the ack of frame 4 arrived.
        sock.sendall(encode_data(5 * FRAME_RECORDS, frame_records(5)))
        first.kill()
        sock.close()
        assert acked == 5 * FRAME_RECORDS - 1
    finally:
        first.close()

    second = Child(ckpt)
    try:
        recovered = second.dump()
        acked_records = [r for n in range(5) for r in frame_records(n)]
        assert recovered[: len(acked_records)] == acked_records  # every acked record, in order, once
        assert recovered[len(acked_records) :] in ([], frame_records(5))  # the unacked frame: all or nothing
        # The client resends from its unacknowledged point (frame 5), and frame 4 as if its ack was lost.
        with socket.create_connection(("127.0.0.1", second.port), timeout=TIMEOUT_S) as again:
            again.sendall(encode_hello("producer-1", token, resuming=True))
            assert ack_of(again) >= acked
            again.sendall(encode_data(5 * FRAME_RECORDS, frame_records(5)))
            assert ack_of(again) == 6 * FRAME_RECORDS - 1
            again.sendall(encode_data(4 * FRAME_RECORDS, frame_records(4)))
            assert ack_of(again) == 6 * FRAME_RECORDS - 1
        with PushClient("127.0.0.1", second.port, "producer-1", timeout_s=TIMEOUT_S) as client:
            assert client.send(["last"]) == 6 * FRAME_RECORDS  # continues after the durable sequence
        assert second.dump() == [r for n in range(6) for r in frame_records(n)] + ["last"]
    finally:
        second.close()


@pytest.mark.chaos
@pytest.mark.timeout(120)
def test_sigkill_between_the_receiver_wal_write_and_the_tracker_event(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    token = new_session_token()  # one session across the kill: its epoch is durable with its state
    first = Child(ckpt)
    try:
        sock = socket.create_connection(("127.0.0.1", first.port), timeout=TIMEOUT_S)
        sock.sendall(encode_hello("producer-1", token))
        assert ack_of(sock) == -1
        for n in range(2):
            sock.sendall(encode_data(n * FRAME_RECORDS, frame_records(n)))
            assert ack_of(sock) == (n + 1) * FRAME_RECORDS - 1
        first.hold_tracker()
        # Frame 2 reaches the receiver WAL (fsynced); its tracker event never happens; no ack is sent.
        sock.sendall(encode_data(2 * FRAME_RECORDS, frame_records(2)))
        first.wait_held()
        first.kill()
        sock.close()
    finally:
        first.close()

    second = Child(ckpt)
    try:
        # Recovery adopts the unreported block: frame 2 is there, once, after the acknowledged frames.
        assert second.dump() == [r for n in range(3) for r in frame_records(n)]
        with socket.create_connection(("127.0.0.1", second.port), timeout=TIMEOUT_S) as again:
            again.sendall(encode_hello("producer-1", token, resuming=True))
            assert ack_of(again) == 3 * FRAME_RECORDS - 1  # the producer learns frame 2 is durable
            again.sendall(encode_data(2 * FRAME_RECORDS, frame_records(2)))  # its resend is deduplicated
            assert ack_of(again) == 3 * FRAME_RECORDS - 1
        with PushClient("127.0.0.1", second.port, "producer-1", timeout_s=TIMEOUT_S) as client:
            assert client.send(["last"]) == 3 * FRAME_RECORDS
        assert second.dump() == [r for n in range(3) for r in frame_records(n)] + ["last"]
    finally:
        second.close()


@pytest.mark.chaos
@pytest.mark.timeout(120)
def test_sigkill_after_a_timed_out_write_committed_late_and_its_resend_was_stored(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    token = new_session_token()  # one session across the kill: its epoch is durable with its state
    first = Child(ckpt)
    try:
        with socket.create_connection(("127.0.0.1", first.port), timeout=TIMEOUT_S) as sock:
            sock.sendall(encode_hello("producer-1", token))
            assert ack_of(sock) == -1
            sock.sendall(encode_data(0, frame_records(0)))
            assert ack_of(sock) == FRAME_RECORDS - 1
            first.command("late", {"armed": True})
            sock.sendall(encode_data(FRAME_RECORDS, frame_records(1)))  # its write times out: no ack
            reply = read_frame(sock, 1 << 20)
            assert reply is not None and reply.kind == ERROR
        with socket.create_connection(("127.0.0.1", first.port), timeout=TIMEOUT_S) as sock:
            sock.sendall(encode_hello("producer-1", token, resuming=True))
            assert ack_of(sock) == FRAME_RECORDS - 1
            sock.sendall(encode_data(FRAME_RECORDS, frame_records(1)))  # the resend: a second block
            assert ack_of(sock) == 2 * FRAME_RECORDS - 1
        first.command("land", {"landed": True})  # the first attempt commits after all (fsynced)
        assert first.dump() == frame_records(0) + frame_records(1)
        first.kill()
    finally:
        first.close()

    second = Child(ckpt)
    try:
        # Recovery finds the late block unknown to the tracker; the resend already holds its records.
        assert second.dump() == frame_records(0) + frame_records(1)
        with PushClient("127.0.0.1", second.port, "producer-1", timeout_s=TIMEOUT_S) as client:
            assert client.send(["last"]) == 2 * FRAME_RECORDS
        assert second.dump() == frame_records(0) + frame_records(1) + ["last"]
    finally:
        second.close()


@pytest.mark.chaos
@pytest.mark.timeout(120)
def test_a_push_client_whose_frame_was_stored_before_a_sigkill_gets_it_acknowledged_not_refused(
    tmp_path: Path,
) -> None:
    """The drill's "fail" sends: the receiver dies after the frame's WAL write and before its ack; a new
    receiver on the same port recovers it. The client's resend is acknowledged as a duplicate, so `send`
    returns (exact numbers), never `PushRejectedError`, and every record is in the stream once."""
    ckpt = tmp_path / "ckpt"
    first = Child(ckpt)
    port = first.port
    outcome: list[object] = []
    with PushClient("127.0.0.1", port, "producer-1", timeout_s=TIMEOUT_S) as client:
        try:
            assert client.send(frame_records(0)) == FRAME_RECORDS - 1
            first.hold_tracker()  # frame 1 reaches the receiver WAL, then the tracker write hangs
            sender = threading.Thread(target=lambda: outcome.append(_send(client, frame_records(1))))
            sender.start()
            first.wait_held()
            first.kill()  # the dangerous moment: stored, not acknowledged
        finally:
            first.close()
        second = Child(ckpt, port)  # recovery adopts the unreported block before it listens
        try:
            sender.join(TIMEOUT_S * 2)
            assert outcome == [2 * FRAME_RECORDS - 1]  # acknowledged, as a duplicate of the stored block
            assert client.send(["last"]) == 2 * FRAME_RECORDS
            assert second.dump() == frame_records(0) + frame_records(1) + ["last"]  # each record once
        finally:
            second.close()


def _send(client: PushClient, records: list[str]) -> object:
    try:
        return client.send(records)
    except Exception as exc:  # the assertion names it
        return exc


@pytest.mark.chaos
@pytest.mark.timeout(120)
def test_a_push_client_follows_a_receiver_restarted_on_another_port_and_its_resend_is_deduplicated(
    tmp_path: Path,
) -> None:
    """The receiver moves (issue 14): its process dies after a frame's WAL write and before its ack, and
    the recovered receiver listens on another port. A client with a resolver finds it, resumes its session
    (the epoch does not change) and resends the frame, which is acknowledged as a duplicate: every record
    is in the stream once, and the client's numbering goes on."""
    ckpt = tmp_path / "ckpt"
    first = Child(ckpt)
    where = [("127.0.0.1", first.port)]  # what a driver would say: where the receiver is now
    outcome: list[object] = []
    with PushClient(resolver=lambda: where[-1], producer_id="producer-1", timeout_s=TIMEOUT_S) as client:
        try:
            assert client.send(frame_records(0)) == FRAME_RECORDS - 1
            first.hold_tracker()  # frame 1 reaches the receiver WAL, then the tracker write hangs
            sender = threading.Thread(target=lambda: outcome.append(_send(client, frame_records(1))))
            sender.start()
            first.wait_held()
            first.kill()  # the dangerous moment: stored, not acknowledged
        finally:
            first.close()
        second = Child(ckpt, port_other_than(first.port))  # recovery adopts the unreported block
        try:
            where.append(("127.0.0.1", second.port))  # the client retried the dead port until now
            sender.join(TIMEOUT_S * 2)
            assert outcome == [2 * FRAME_RECORDS - 1]  # acknowledged, as a duplicate of the stored block
            assert (client.port, client.epoch) == (second.port, 1)  # moved, and the same session
            assert client.send(["last"]) == 2 * FRAME_RECORDS
            assert second.dump() == frame_records(0) + frame_records(1) + ["last"]  # each record once
        finally:
            second.close()
