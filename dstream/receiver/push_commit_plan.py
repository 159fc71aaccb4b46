"""The push receiver's committer: its judgement of one group of HELLOs and frames, before any write.

The committer thread of `dstream.receiver.push` takes every HELLO (of a new session) and DATA frame
waiting at one moment, judges them in arrival order with the session rules
(`dstream.receiver.producer_sessions`) against the state each producer would have if everything judged
before it were durable, and then writes once: the new records as one block, the new epochs as one state
record. `GroupPlan` is that judgement; it touches no socket and no storage, so the receiver only writes
what it planned and applies `durable` and `sessions` once the writes returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from dstream.receiver.producer_sessions import ProducerState, Verdict, on_frame, on_hello
from dstream.receiver.push_protocol import Hello, ProtocolError


class GroupPlan:
    """The committer's judgement of one group: per producer the state as if everything before were durable.

    Every item gets its reply value from the planned state right after its own decision, so an ACK never
    covers sequence numbers another session wrote later.
    """

    def __init__(self, applied: Callable[[str], ProducerState]) -> None:
        self._applied = applied
        self.planned: dict[str, ProducerState] = {}
        self.durable: dict[str, ProducerState] = {}  # what the block makes durable
        self.sessions: dict[str, ProducerState] = {}  # new epochs, written after the block
        self.ranges: dict[str, list[int]] = {}
        self.epochs: dict[str, int] = {}
        self.by_producer: dict[str, list[Any]] = {}  # the block's records, grouped in `ranges` order
        self.frames: list[PendingFrame] = []
        self.hellos: list[PendingHello] = []

    def _state(self, producer: str) -> ProducerState:
        state = self.planned.get(producer)
        return state if state is not None else self._applied(producer)

    def hello(self, item: PendingHello) -> None:
        producer = item.hello.producer_id
        state = self._state(producer)
        decision = on_hello(state, item.hello.session_id, item.hello.resuming)
        if decision.verdict is Verdict.FENCED:
            item.fail(FencedError(fenced_message(producer, state)))
            return
        self.planned[producer] = decision.state
        if decision.verdict is Verdict.NEW_EPOCH:
            self.sessions[producer] = decision.state
        item.reply = (decision.state.epoch, decision.state.durable_seq)
        self.hellos.append(item)

    def frame(self, item: PendingFrame) -> None:
        producer = item.producer
        state = self._state(producer)
        decision = on_frame(state, item.session_id, item.first_seq, len(item.records))
        if decision.verdict is Verdict.FENCED:
            item.fail(FencedError(fenced_message(producer, state)))
            return
        if decision.verdict is Verdict.GAP:
            item.fail(ProtocolError(f"producer {producer!r} sent seq {item.first_seq} but only "
                                    f"{state.durable_seq} is durable: a gap"))  # fmt: skip
            return
        if decision.verdict is Verdict.ACCEPT:
            if self.epochs.setdefault(producer, state.epoch) != state.epoch:
                # Cannot happen (a new session waits for its SESSION reply, sent after this group), but a
                # block must carry one epoch per producer: let the frame come back in a later group.
                item.fail(OSError(f"producer {producer!r} frames of two epochs in one group"))
                return
            last = decision.state.durable_seq
            self.ranges.setdefault(producer, [state.durable_seq + 1, last])[1] = last
            self.by_producer.setdefault(producer, []).extend(item.records[decision.fresh_from :])
            self.planned[producer] = self.durable[producer] = decision.state
        item.reply = (decision.state.epoch, decision.state.durable_seq)
        self.frames.append(item)

    @property
    def records(self) -> list[Any]:
        return [r for producer in self.ranges for r in self.by_producer[producer]]

    def block_metadata(self) -> dict[str, Any]:
        return {"producers": self.ranges, "epochs": {p: self.epochs[p] for p in self.ranges}}

    def fail_all(self, error: Exception) -> None:
        for item in [*self.frames, *self.hellos]:
            item.fail(error)


def fenced_message(producer: str, state: ProducerState) -> str:
    return (
        f"producer {producer!r}: this session was fenced by a newer session of the same producer id "
        f"(epoch {state.epoch} now); two clients must not share a producer_id"
    )


class FencedError(Exception):
    """The frame's session is not the producer's current one; the client is told it is fenced."""


class PendingFrame:
    """A decoded DATA frame waiting for the committer."""

    def __init__(self, producer: str, session_id: str, first_seq: int, records: list[Any]) -> None:
        self.producer, self.session_id, self.first_seq, self.records = (
            producer,
            session_id,
            first_seq,
            records,
        )
        self.done = threading.Event()
        self.error: Exception | None = None
        self.reply = (0, -1)  # (epoch, durable seq to acknowledge), set by the committer

    def fail(self, error: Exception) -> None:
        self.error = error
        self.done.set()

    def __str__(self) -> str:
        return f"frame of producer {self.producer!r} from seq {self.first_seq}"


class PendingHello(PendingFrame):
    """A HELLO that opens a new epoch, waiting for the committer to make it durable."""

    def __init__(self, hello: Hello) -> None:
        super().__init__(hello.producer_id, hello.session_id, -1, [])
        self.hello = hello

    def __str__(self) -> str:
        return f"new session of producer {self.producer!r}"
