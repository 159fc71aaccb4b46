"""What a refused send means: never stored only when the refused frame was never delivered before.

Found by `dstream drill` on S3: after a driver restart the receiver refused the resend of frames whose
first delivery had been stored (their reply lost in the kill), the client raised `PushRejectedError`,
the workload recorded "fail" (never stored) and the records were committed after all. Now a refusal
of a frame that may have been stored raises `PushOutcomeUnknownError` ("info") and its numbers are
never given to other records. A scripted receiver plays each reply, so every outcome is exact.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from chaos.workload import Producer, WorkloadSpec
from dstream.client import PushClient, PushError, PushOutcomeUnknownError, PushRejectedError
from dstream.receiver.push_protocol import (
    DATA,
    HELLO,
    decode_data,
    encode_ack,
    encode_error,
    encode_session,
    read_frame,
)
from tests.receiver.helpers import WAIT_S

FRAME_BYTES_MAX = 1 << 20


class ScriptedReceiver:
    """Answers each DATA frame as the script says: "ack", "drop" (close, no reply) or "refuse"."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.frames: list[tuple[int, list[str]]] = []  # (first seq, records) of every DATA received
        self.durable = -1
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(WAIT_S)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self.script:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(WAIT_S)
                self._serve_connection(conn)

    def _serve_connection(self, conn: socket.socket) -> None:
        while self.script:
            frame = read_frame(conn, FRAME_BYTES_MAX)
            if frame is None:
                return
            if frame.kind == HELLO:
                conn.sendall(encode_session(1, self.durable))
                continue
            assert frame.kind == DATA
            first, records = decode_data(frame.payload)
            self.frames.append((first, records))
            action = self.script.pop(0)
            if action == "refuse":
                conn.sendall(encode_error(f"seq {first} refused by the script"))
                return
            if action == "ack":
                self.durable = max(self.durable, first + len(records) - 1)
            if action == "drop":  # the reply is lost (the receiver was killed); its state knows nothing
                return
            conn.sendall(encode_ack(self.durable))

    def close(self) -> None:
        self.script.clear()
        self._listener.close()
        self._thread.join(WAIT_S)


@contextmanager
def scripted(script: list[str]) -> Iterator[ScriptedReceiver]:
    receiver = ScriptedReceiver(script)
    try:
        yield receiver
    finally:
        receiver.close()


def client(port: int, **kwargs: object) -> PushClient:
    return PushClient("127.0.0.1", port, "p", timeout_s=WAIT_S, backoff_initial_s=0.001, **kwargs)  # type: ignore[arg-type]


def test_a_refusal_of_a_resend_after_a_lost_reply_is_an_unknown_outcome_and_keeps_the_numbers() -> None:
    with scripted(["drop", "refuse", "ack"]) as receiver, client(receiver.port) as producer:
        with pytest.raises(PushOutcomeUnknownError, match=r"seq 0\.\.1 was refused after an earlier"):
            producer.send(["a", "b"])  # the first delivery's reply is lost; the resend is refused
        assert not producer.unacked  # dropped: resending it would be refused again
        assert producer.send(["c"]) == 2  # seq 0 and 1 may be stored: never reused
        assert receiver.frames == [(0, ["a", "b"]), (0, ["a", "b"]), (2, ["c"])]


def test_a_refusal_at_the_first_delivery_is_definite_and_gives_the_numbers_back() -> None:
    with scripted(["refuse", "ack"]) as receiver, client(receiver.port) as producer:
        with pytest.raises(PushRejectedError) as raised:
            producer.send(["a"])
        assert not isinstance(raised.value, PushOutcomeUnknownError)
        assert producer.send(["b"]) == 0  # seq 0 was never stored: it numbers the next record
        assert receiver.frames == [(0, ["a"]), (0, ["b"])]


def test_an_earlier_frame_refused_on_its_resend_fails_this_send_definitely_and_keeps_its_own_numbers() -> (
    None
):
    with (
        scripted(["drop", "drop", "refuse", "ack"]) as receiver,
        client(receiver.port, retries_max=1) as producer,
    ):
        with pytest.raises(PushError) as gave_up:  # two deliveries, both replies lost: unknown outcome
            producer.send(["a"])
        assert type(gave_up.value) is PushError and producer.unacked
        with pytest.raises(PushRejectedError, match=r"seq 1\.\.1 not sent \(never stored\)") as raised:
            producer.send(["b"])  # the queued frame goes first and is refused: "b" is never sent
        assert not isinstance(raised.value, PushOutcomeUnknownError)
        assert producer.send(["c"]) == 1  # "a" keeps seq 0 (maybe stored); "b"'s seq 1 is free again
        assert receiver.frames == [(0, ["a"]), (0, ["a"]), (0, ["a"]), (1, ["c"])]


class RaisingProducer(Producer):
    def __init__(self, error: BaseException) -> None:
        super().__init__(0, ("a",), WorkloadSpec(), 1, lambda *args, **kwargs: None)
        self.error = error

    def deliver(self, stream: str, records: list[object]) -> None:  # type: ignore[override]
        raise self.error


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (PushRejectedError("refused at its first delivery"), "fail"),
        (PushOutcomeUnknownError("refused on a resend"), "info"),
        (PushError("timed out"), "info"),
    ],
)
def test_the_workload_records_what_the_client_documents(error: BaseException, outcome: str) -> None:
    assert RaisingProducer(error)._outcome("a", []) == outcome
