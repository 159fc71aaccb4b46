"""The producer session rules (dstream/receiver/producer_sessions.py), exhaustively with Hypothesis.

The model: producers, clients (sessions with a token, a next sequence number and unacknowledged frames),
and a receiver that judges every HELLO and frame with the pure rules and applies the returned state when
"durable" (at once here; the push receiver's committer does the same after its writes). Frames can be
lost before they arrive, stored with their ack lost, resent, and new sessions can start at any moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from dstream.receiver.producer_sessions import (
    NO_SESSION,
    ProducerState,
    Verdict,
    merge,
    on_frame,
    on_hello,
)

PRODUCERS = ("p", "q")


@dataclass
class Client:
    producer: str
    token: str
    answered: bool = False  # a HELLO of this session was answered (it reconnects as "resuming")
    next_seq: int | None = None
    unacked: list[tuple[int, list[str]]] = field(default_factory=list)  # (first seq, record ids)
    acked: dict[int, str] = field(default_factory=dict)  # seq -> record id it was acknowledged for
    fenced: bool = False
    sent: int = 0


class Sessions(RuleBasedStateMachine):
    clients = Bundle("clients")

    @initialize()
    def setup(self) -> None:
        self.states: dict[str, ProducerState] = {}
        self.stream: dict[tuple[str, int], str] = {}  # (producer, seq) -> record id; once each
        self.tokens = 0
        self.fenced_tokens: set[str] = set()
        self.all_clients: list[Client] = []

    def _state(self, producer: str) -> ProducerState:
        return self.states.get(producer, NO_SESSION)

    @rule(target=clients, producer=st.sampled_from(PRODUCERS))
    def new_client(self, producer: str) -> Client:
        self.tokens += 1
        client = Client(producer, f"t{self.tokens}")
        self.all_clients.append(client)
        return client

    @rule(client=clients)
    def hello(self, client: Client) -> None:
        if client.fenced:
            return
        before = self._state(client.producer)
        decision = on_hello(before, client.token, client.answered)
        if decision.verdict is Verdict.FENCED:
            assert client.answered and before.token != client.token
            client.fenced = True
            return
        if decision.verdict is Verdict.NEW_EPOCH:
            assert decision.state.epoch == before.epoch + 1
            if before.token is not None:
                self.fenced_tokens.add(before.token)
        self.states[client.producer] = decision.state
        client.answered = True
        self._take_ack(client, decision.state.durable_seq)
        if client.next_seq is None:
            client.next_seq = decision.state.durable_seq + 1

    @rule(client=clients, count=st.integers(0, 3), arrives=st.booleans(), ack_lost=st.booleans())
    def send(self, client: Client, count: int, arrives: bool, ack_lost: bool) -> None:
        if client.fenced or client.next_seq is None:
            return
        records = [f"{client.token}-{client.sent + i}" for i in range(count)]
        client.sent += count
        if count:
            client.unacked.append((client.next_seq, records))
            client.next_seq += count
        if client.unacked and arrives:
            self._deliver(client, *client.unacked[0], ack_lost)

    @rule(client=clients, ack_lost=st.booleans())
    def resend(self, client: Client, ack_lost: bool) -> None:
        if client.unacked and not client.fenced and client.answered:
            self._deliver(client, *client.unacked[0], ack_lost)

    def _deliver(self, client: Client, first: int, records: list[str], ack_lost: bool) -> None:
        before = self._state(client.producer)
        decision = on_frame(before, client.token, first, len(records))
        if decision.verdict is Verdict.FENCED:
            assert before.token != client.token
            client.fenced = True
            return
        assert client.token not in self.fenced_tokens, "a fenced session got past the rules"
        assert decision.verdict is not Verdict.GAP, "a live session's own frames never leave a gap"
        if decision.verdict is Verdict.ACCEPT:
            for i, record in enumerate(records[decision.fresh_from :], start=first + decision.fresh_from):
                assert (client.producer, i) not in self.stream, "a sequence number stored twice"
                self.stream[(client.producer, i)] = record
            self.states[client.producer] = decision.state
        if not ack_lost:
            self._take_ack(client, decision.state.durable_seq)

    def _take_ack(self, client: Client, durable_seq: int) -> None:
        """What PushClient does with an ACK or SESSION reply: every frame up to it counts as delivered."""
        assert client.token not in self.fenced_tokens, "a fenced token got an ack"
        while client.unacked and client.unacked[0][0] + len(client.unacked[0][1]) - 1 <= durable_seq:
            first, records = client.unacked.pop(0)
            client.acked.update({first + i: r for i, r in enumerate(records)})

    @invariant()
    def every_acknowledged_record_is_in_the_stream_as_sent(self) -> None:
        for client in self.all_clients:
            for seq, record in client.acked.items():
                assert self.stream.get((client.producer, seq)) == record

    @invariant()
    def only_the_current_session_is_live(self) -> None:
        for state in self.states.values():
            assert state.token not in self.fenced_tokens
            assert state.epoch >= 1


Sessions.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
test_session_rules = Sessions.TestCase


def test_a_reconnect_of_the_live_session_resumes() -> None:
    state = ProducerState(epoch=3, token="a", durable_seq=9)
    assert on_hello(state, "a", resuming=True).verdict is Verdict.RESUME
    assert on_hello(state, "a", resuming=False).verdict is Verdict.RESUME  # its first HELLO's reply was lost


def test_a_new_session_opens_the_next_epoch_and_fences_the_old_one() -> None:
    state = ProducerState(epoch=3, token="a", durable_seq=9)
    opened = on_hello(state, "b", resuming=False)
    assert opened.verdict is Verdict.NEW_EPOCH and opened.state == ProducerState(4, "b", 9)
    assert on_hello(opened.state, "a", resuming=True).verdict is Verdict.FENCED
    assert on_frame(opened.state, "a", 10, 1).verdict is Verdict.FENCED
    assert on_frame(opened.state, "b", 10, 2).state.durable_seq == 11


def test_frames_of_the_live_session_are_judged_by_sequence_number() -> None:
    state = ProducerState(epoch=1, token="a", durable_seq=4)
    assert on_frame(state, "a", 0, 5).verdict is Verdict.DUPLICATE
    partly = on_frame(state, "a", 3, 4)
    assert partly.verdict is Verdict.ACCEPT and partly.fresh_from == 2 and partly.state.durable_seq == 6
    assert on_frame(state, "a", 6, 1).verdict is Verdict.GAP


def test_recovery_keeps_the_newest_epoch_and_the_highest_sequence() -> None:
    state = merge(NO_SESSION, 2, "b", 5)
    assert merge(state, 1, "a", 9) == ProducerState(2, "b", 9)
    assert merge(state, 3, "c", -1) == ProducerState(3, "c", 5)
