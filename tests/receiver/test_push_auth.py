"""Optional producer authentication: an HMAC of the HELLO over a per-connection challenge (issue 12).

Off by default. With `producer_secret_env` only holders of the shared secret can open or resume a session,
so a local process without it can no longer fence a real producer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dstream.client import PushAuthenticationError, PushClient
from dstream.errors import DStreamValueError
from dstream.receiver.push import PushReceiver
from dstream.receiver.push_protocol import (
    CHALLENGE,
    ERROR,
    SESSION,
    UNAUTHENTICATED,
    decode_challenge,
    decode_error,
    encode_hello,
    new_session_token,
    read_frame,
)
from tests.receiver.helpers import wait_for
from tests.receiver.test_push import Running, raw_connect

SECRET_ENV = "DSTREAM_TEST_PUSH_SECRET"
SECRET = b"correct horse battery staple"


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    monkeypatch.setenv(SECRET_ENV, SECRET.decode())
    r = Running(tmp_path, connections_max=8, producer_secret_env=SECRET_ENV)
    yield r
    r.tracker.stop()


def test_a_producer_with_the_secret_is_served(running: Running) -> None:
    with PushClient("127.0.0.1", running.port, "p", secret=SECRET) as client:
        assert client.send(["a"]) == 0
        client._close_socket()  # a reconnect is challenged again and resumes the session
        assert client.send(["b"]) == 1
    assert running.records() == ["a", "b"]
    assert running.receiver.producer_state("p").epoch == 1


@pytest.mark.parametrize("secret", [None, b"wrong"])
def test_a_producer_without_the_secret_is_refused_at_once(running: Running, secret: bytes | None) -> None:
    with PushClient("127.0.0.1", running.port, "p", timeout_s=30, secret=secret) as client:
        with pytest.raises(PushAuthenticationError):
            client.send(["x"])
    assert running.records() == []


def test_a_process_without_the_secret_cannot_fence_the_real_producer(running: Running) -> None:
    real = PushClient("127.0.0.1", running.port, "sensor-7", secret=SECRET)
    assert real.send(["r0"]) == 0
    with PushClient("127.0.0.1", running.port, "sensor-7") as spoofer:
        with pytest.raises(PushAuthenticationError):
            spoofer.send(["spoofed"])
    assert real.send(["r1"]) == 1  # still the live session
    real.close()
    assert running.records() == ["r0", "r1"]


def test_a_recorded_hello_cannot_be_replayed_on_another_connection(running: Running) -> None:
    token = new_session_token()
    with raw_connect(running.port) as first:
        first.sendall(encode_hello("p", token))
        challenge = read_frame(first, 1 << 20)
        assert challenge is not None and challenge.kind == CHALLENGE
        recorded = encode_hello("p", token, False, SECRET, decode_challenge(challenge.payload))
        first.sendall(recorded)
        reply = read_frame(first, 1 << 20)
        assert reply is not None and reply.kind == SESSION
    with raw_connect(running.port) as replay:
        replay.sendall(recorded)  # its mac is over the first connection's nonce
        challenge = read_frame(replay, 1 << 20)
        assert challenge is not None and challenge.kind == CHALLENGE
        replay.sendall(recorded)
        refused = read_frame(replay, 1 << 20)
        assert refused is not None and refused.kind == ERROR
        code, message = decode_error(refused.payload)
        assert code == UNAUTHENTICATED and f"${SECRET_ENV}" in message


def test_an_unset_secret_variable_fails_the_start_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    receiver = PushReceiver(producer_secret_env=SECRET_ENV)
    try:
        with pytest.raises(DStreamValueError, match=SECRET_ENV):
            receiver.onStart()
    finally:
        receiver.onStop()


def test_the_secret_is_never_pickled(running: Running) -> None:
    wait_for(running.receiver.isStarted)  # read from the environment at the start
    assert running.receiver._producer_secret == SECRET
    state = running.receiver.__getstate__()
    assert "_producer_secret" not in state and state["producer_secret_env"] == SECRET_ENV
