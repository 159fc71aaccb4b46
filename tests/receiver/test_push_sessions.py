"""Producer sessions over the wire: two clients on one producer id lose nothing acknowledged (issue 12).

Before sessions, the receiver took the second client's sequence numbers for resends of the first's:
400 records were acknowledged and about half never reached the stream. Now the second client's HELLO
opens a new epoch and fences the first, which raises `ProducerFencedError` for what was not acknowledged.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dstream.client import ProducerFencedError, PushClient, PushError, PushVersionError
from dstream.receiver.producer_sessions import ProducerState
from dstream.receiver.push_commit_plan import PendingHello
from dstream.receiver.push_protocol import (
    ERROR,
    FENCED,
    REFUSED,
    SESSION,
    VERSION,
    Hello,
    decode_error,
    decode_hello,
    encode_data,
    encode_error,
    encode_hello,
    hello_is_authentic,
    new_session_token,
    read_frame,
)
from tests.receiver.helpers import wait_for
from tests.receiver.test_push import STREAM, Running, raw_connect, reply

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
RECORDS_PER_CLIENT = 200
RECORDS_PER_SEND = 10


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    r = Running(tmp_path, frame_bytes_max=4096, connections_max=8)
    yield r
    r.tracker.stop()


def batches(name: str) -> list[list[str]]:
    per_send = range(RECORDS_PER_SEND)
    return [[f"{name}-{i}-{j}" for j in per_send] for i in range(RECORDS_PER_CLIENT // RECORDS_PER_SEND)]


def test_two_clients_on_one_producer_id_lose_no_acknowledged_record(running: Running) -> None:
    first = PushClient("127.0.0.1", running.port, "shared")
    second = PushClient("127.0.0.1", running.port, "shared")
    acked: list[str] = []
    fenced: list[ProducerFencedError] = []
    for batch_a, batch_b in zip(batches("a"), batches("b"), strict=True):  # alternate, as two services would
        for client, batch in ((first, batch_a), (second, batch_b)):
            try:
                client.send(batch)
            except ProducerFencedError as exc:
                fenced.append(exc)
            else:
                acked.extend(batch)
    first.close()
    second.close()
    # The second client's first HELLO fenced the first, which raises from then on, never reconnecting.
    assert len(fenced) == RECORDS_PER_CLIENT // RECORDS_PER_SEND - 1
    assert "fenced by another client using the same producer_id" in str(fenced[0])
    assert fenced[-1] is fenced[0]
    stream = running.records()
    assert Counter(stream) == Counter(acked)  # every acknowledged record, once; nothing else
    assert len(acked) == RECORDS_PER_SEND + RECORDS_PER_CLIENT
    assert running.receiver.producer_state("shared").epoch == 2


def test_two_concurrent_clients_on_one_producer_id_lose_no_acknowledged_record(running: Running) -> None:
    acked: dict[str, list[str]] = {"a": [], "b": []}

    def produce(name: str) -> None:
        with PushClient("127.0.0.1", running.port, "shared", timeout_s=30) as client:
            for batch in batches(name):
                try:
                    client.send(batch)
                except ProducerFencedError:
                    return
                acked[name].extend(batch)

    threads = [threading.Thread(target=produce, args=(name,)) for name in acked]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    stream = running.records()
    assert max(Counter(stream).values()) == 1  # nothing twice
    assert set(acked["a"] + acked["b"]) <= set(stream)  # nothing acknowledged lost
    assert len(acked["a"]) == RECORDS_PER_CLIENT or len(acked["b"]) == RECORDS_PER_CLIENT  # the last one wins


def test_a_spoofing_process_fences_the_real_producer_which_raises(running: Running) -> None:
    real = PushClient("127.0.0.1", running.port, "sensor-7")
    assert real.send(["r0", "r1"]) == 1
    spoofer = subprocess.run(
        [sys.executable, "-m", "tests.receiver.push_spoofer", str(running.port), "sensor-7"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(spoofer.stdout) == {"seq": 2}  # it continued after the real producer's records
    with pytest.raises(ProducerFencedError, match=r"seq 2\.\.2"):
        real.send(["r2"])  # seq 2, the spoofer's: refused, never acknowledged as a duplicate
    with pytest.raises(ProducerFencedError):
        real.send([])
    real.close()
    assert running.records() == ["r0", "r1", "spoofed"]


def test_a_fenced_session_stays_fenced_after_a_receiver_restart(tmp_path: Path) -> None:
    from tests.receiver.test_push_exactly_once import Harness

    harness = Harness(str(tmp_path / "ckpt"))
    try:
        old = PushClient("127.0.0.1", harness.port, "p", timeout_s=30)
        assert old.send(["a"]) == 0
        with PushClient("127.0.0.1", harness.port, "p", timeout_s=30) as new:
            assert new.send(["b"]) == 1  # epoch 2: the session record is in the receiver WAL
        harness.restart()
        assert harness.receiver.producer_state("p").epoch == 2
        with pytest.raises(ProducerFencedError):
            old.send(["c"])  # its reconnect (a resuming HELLO) is refused by the recovered epoch
        old.close()
        assert harness.stream() == ["a", "b"]
    finally:
        harness.stop()


def test_a_fenced_frame_gets_an_error_frame_and_nothing_is_stored(running: Running) -> None:
    with raw_connect(running.port) as old, raw_connect(running.port) as new:
        old.sendall(encode_hello("p"))
        assert reply(old) == (SESSION, (1, -1))
        new.sendall(encode_hello("p"))
        assert reply(new) == (SESSION, (2, -1))
        old.sendall(encode_data(0, ["stale"]))
        kind, (code, message) = reply(old)
        assert kind == ERROR and code == FENCED and "epoch 2 now" in message
        assert old.recv(1) == b""
        new.sendall(encode_data(0, ["fresh"]))
        assert reply(new) == (3, 0)
    assert running.records() == ["fresh"]


def test_hello_v2_matches_its_golden_file() -> None:
    golden = (GOLDEN / "push-hello-v2.bin").read_bytes()
    assert encode_hello("sensor-7", bytes(range(16)).hex()) == golden
    assert golden[4] == VERSION == 2
    hello = decode_hello(golden[16:])
    assert (hello.producer_id, hello.token, hello.resuming) == ("sensor-7", bytes(range(16)).hex(), False)
    nonce = bytes(range(100, 116))
    signed = (GOLDEN / "push-hello-v2-authenticated.bin").read_bytes()
    assert encode_hello("sensor-7", bytes(range(16)).hex(), True, b"secret", nonce) == signed
    hello = decode_hello(signed[16:])
    assert hello.resuming and hello_is_authentic(hello, b"secret", nonce)
    assert not hello_is_authentic(hello, b"secret", bytes(16))


def test_an_old_version_client_is_refused_with_an_error_it_can_read(running: Running) -> None:
    golden_v1 = (GOLDEN / "push-hello-v1.bin").read_bytes()  # what a version-1 PushClient sends first
    assert golden_v1[4] == 1 and golden_v1[16:] == b"sensor-7"
    with raw_connect(running.port) as sock:
        sock.sendall(golden_v1)
        frame = read_frame(sock, 1 << 20)
        assert frame is not None and frame.version == 1 and frame.kind == ERROR  # in the client's version
        code, message = decode_error(frame.payload)
        assert code == REFUSED and "version 1 is not supported" in message and "speaks version 2" in message
        assert sock.recv(1) == b""
    assert running.receiver.producer_state("sensor-7").epoch == 0  # never read as a producer


def test_a_client_facing_an_old_version_receiver_raises_at_once() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:

        def old_receiver() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(1 << 16)
                conn.sendall(encode_error("protocol version 2 is not supported; expected 1", REFUSED, 1))

        thread = threading.Thread(target=old_receiver, daemon=True)
        thread.start()
        client = PushClient("127.0.0.1", server.getsockname()[1], "p", timeout_s=30)
        with pytest.raises(PushVersionError, match="version 1, this client version 2"):
            client.send(["x"])
        client.close()
        thread.join(10)


def test_a_session_token_must_have_its_length() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        encode_hello("p", "abcd")
    assert len(bytes.fromhex(new_session_token())) == 16


def test_every_record_of_a_fenced_client_is_in_the_stream_at_most_once(running: Running) -> None:
    first = PushClient("127.0.0.1", running.port, "p", timeout_s=30)
    first.send(["a0"])
    with PushClient("127.0.0.1", running.port, "p") as second:
        second.send(["b0"])
    with pytest.raises(PushError):
        first.send(["a1"])
    assert first.unacked  # kept: the client does not pretend they were delivered
    first.close()
    infos = running.tracker.block_tracker.get_unallocated_blocks(STREAM)
    assert [i.metadata["epochs"] for i in infos] == [{"p": 1}, {"p": 2}]
    assert running.records() == ["a0", "b0"]


def test_a_retried_hello_of_a_new_session_in_one_group_resumes_the_epoch_it_opened(running: Running) -> None:
    wait_for(running.receiver.isStarted)
    token = new_session_token()
    first, again = PendingHello(Hello("p", token, False)), PendingHello(Hello("p", token, False))
    running.receiver._commit([first, again])  # its first HELLO's reply was lost; the retry came at once
    assert first.done.is_set() and again.done.is_set() and again.error is None
    assert first.reply == again.reply == (1, -1)
    assert running.receiver.producer_state("p") == ProducerState(1, first.hello.session_id, -1)
    assert token not in str(running.receiver.recovery_state())  # only a digest of it is kept
