"""Producer sessions: which push frames a producer may still write, as a pure state machine.

Kafka's idempotent producer is the anchor: a producer id has epochs, each owned by one session, and a new
epoch fences the old one. Here a `PushClient` instance is one session, named by a random session token it
keeps across its own reconnects. Per producer id the receiver keeps a `ProducerState`: the current epoch,
the token that owns it, and the highest durable sequence number (sequence numbers run on across epochs, so
a new session continues after the last durable record of the producer).

The rules compare session tokens for equality only, so the push receiver passes a digest of each token
(`Hello.session_id`) and its durable state never holds a token that a reader could resume with.

Rules (`on_hello`, `on_frame`; no I/O here, the push receiver applies the returned state only once it is
durable):

- HELLO with the current token: RESUME. A reconnect of the live session; its resends are judged by
  sequence number as usual.
- HELLO with another token from a session that was accepted before (`resuming`): FENCED. That session
  lost its epoch to a newer one; it must not write again, whatever it resends.
- HELLO with another token from a new session: NEW_EPOCH (epoch + 1, owned by that token). This fences
  the old session. The new epoch is made durable before the HELLO is answered, so a restart does not let
  the fenced session back in.
- DATA from a token that does not own the current epoch: FENCED, never acknowledged.
- DATA of the current session: records at or below `durable_seq` are resends (DUPLICATE when nothing is
  new), a frame that starts beyond `durable_seq + 1` leaves a GAP and is refused, otherwise ACCEPT its
  records from `durable_seq + 1` on.

Why fencing keeps every acknowledged record: only the owner of the current epoch can move `durable_seq`,
and a session learns its starting point from the reply to its HELLO, after its epoch is durable. So a
sequence number a live session is acknowledged for was written by that session, and a session that is
fenced gets an error, never an acknowledgement, for whatever it had not been acknowledged yet.

`merge` folds durable state found at recovery (block metadata, snapshots, session records) into the state:
the highest epoch wins with its token, and the highest durable sequence number wins.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class Verdict(enum.Enum):
    """What the receiver does with a HELLO or a DATA frame."""

    RESUME = "resume"  # HELLO of the live session: answer with the producer's durable seq
    NEW_EPOCH = "new-epoch"  # HELLO of a new session: make the new epoch durable, then answer
    FENCED = "fenced"  # an older session: refuse with an ERROR frame, never acknowledge
    ACCEPT = "accept"  # DATA with new records: store them, acknowledge once durable
    DUPLICATE = "duplicate"  # DATA holding only durable records (a resend): acknowledge at once
    GAP = "gap"  # DATA starting beyond durable_seq + 1: refuse


@dataclass(frozen=True)
class ProducerState:
    """What the receiver keeps per producer id.

    Attributes:
        epoch: the current epoch, 0 before any session was opened.
        token: the session token owning `epoch` (None before any session).
        durable_seq: the producer's highest durable sequence number, -1 for none.
    """

    epoch: int = 0
    token: str | None = None
    durable_seq: int = -1


@dataclass(frozen=True)
class Decision:
    """A verdict and the producer's state once what it asks for is durable.

    Attributes:
        verdict: what to do with the event.
        state: the state to apply when the write the verdict asks for (if any) is durable.
        fresh_from: for ACCEPT, the index of the frame's first new record.
    """

    verdict: Verdict
    state: ProducerState
    fresh_from: int = 0


NO_SESSION = ProducerState()


def on_hello(state: ProducerState, token: str, resuming: bool) -> Decision:
    """Decide a HELLO of session `token`; `resuming` when that session had a HELLO answered before."""
    if token == state.token:
        return Decision(Verdict.RESUME, state)
    if resuming:
        return Decision(Verdict.FENCED, state)
    return Decision(Verdict.NEW_EPOCH, replace(state, epoch=state.epoch + 1, token=token))


def on_frame(state: ProducerState, token: str, first_seq: int, count: int) -> Decision:
    """Decide a DATA frame of session `token` holding `count` records numbered from `first_seq`."""
    if token != state.token:
        return Decision(Verdict.FENCED, state)
    if first_seq > state.durable_seq + 1:
        return Decision(Verdict.GAP, state)
    last = first_seq + count - 1
    if last <= state.durable_seq:
        return Decision(Verdict.DUPLICATE, state)
    return Decision(Verdict.ACCEPT, replace(state, durable_seq=last), state.durable_seq + 1 - first_seq)


def merge(state: ProducerState, epoch: int, token: str | None, durable_seq: int) -> ProducerState:
    """Fold durable state found at recovery into `state` (the newest epoch and the highest seq win)."""
    if epoch > state.epoch:
        state = replace(state, epoch=epoch, token=token)
    return replace(state, durable_seq=max(state.durable_seq, durable_seq))
