"""Which Dask workers are alive, as the driver sees them: a view kept up to date by the scheduler's events.

Every driver-side call to a worker (a block get or put through `Client.run`, the pids chaos kills) must
skip a worker known dead: connecting to a dead address waits out Dask's 30 s connect timeout, once per
call. Asking the scheduler which workers are alive before each call costs a round trip per call, so the
backend keeps this view instead and reads it for free.

Two sources feed it, over two channels whose relative order is not guaranteed:

- **Events**, pushed by the scheduler on its ``"all"`` topic (``add-worker``, ``remove-worker``, with a
  ``worker`` address), in the order the scheduler logged them. They are the fast path: a worker that dies
  (SIGKILL closes its connection; a paused one misses ``dstream.dask.workerTimeout`` of heartbeats) is
  out of the view as soon as the scheduler says so.
- **Snapshots** of the scheduler's whole worker list, taken at start and then every `REFRESH_S` by a
  daemon thread: the safety net for anything an event stream can miss (a worker that came or went
  while the subscription was being set up, a reconnect).

`Membership` is the pure decision, tested with Hypothesis (tests/backends/test_dask_membership.py):
each event is numbered and remembered per address; a snapshot is requested with a token (the number of
events seen at the time) and, when its answer arrives, decides only about addresses that no event has
changed since the token (an event seen after the request is newer than the snapshot's answer). Answers
are applied in request order, and older ones are dropped. `WorkerMembership` is the thin shell on a
`distributed.Client`; it calls its listeners with each worker that leaves the view (the DAG scheduler
forgets what that worker held) and each one that joins. Listeners run on the client's event loop or the
refresh thread: they must be quick and must not call the client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

EVENTS_TOPIC = "all"  # the scheduler's topic carrying add-worker and remove-worker
REFRESH_S = 2.0  # how often a snapshot double-checks the event stream
SNAPSHOT_TIMEOUT_S = 10.0  # bound on one snapshot's round trip to the scheduler

MembershipListener = Callable[[str], None]


class Membership:
    """The alive workers, from ordered events and possibly stale snapshots (pure: no I/O, no threads)."""

    def __init__(self) -> None:
        self._alive: set[str] = set()
        self._seq = 0  # events seen so far
        self._changed_at: dict[str, int] = {}  # address -> number of its last event (newer than tokens)
        self._applied_token = -1

    def alive(self) -> list[str]:
        """The workers alive now, sorted."""
        return sorted(self._alive)

    def is_alive(self, address: str) -> bool:
        return address in self._alive

    def added(self, address: str) -> bool:
        """The scheduler registered `address`; True if it was not in the view."""
        self._note(address)
        news = address not in self._alive
        self._alive.add(address)
        return news

    def removed(self, address: str) -> bool:
        """The scheduler removed `address` (dead, paused too long, or retired); True if it was in the view."""
        self._note(address)
        news = address in self._alive
        self._alive.discard(address)
        return news

    def _note(self, address: str) -> None:
        self._seq += 1
        self._changed_at[address] = self._seq

    def token(self) -> int:
        """Take before asking the scheduler for a snapshot; pass it to `snapshot` with the answer."""
        return self._seq

    def snapshot(self, workers: Iterable[str], token: int) -> tuple[list[str], list[str]]:
        """Apply the scheduler's worker list, as asked for at `token`; returns (joined, left), sorted.

        An address changed by an event after `token` keeps what that event said; an answer older than
        one already applied is dropped.
        """
        if token < self._applied_token:
            return [], []
        self._applied_token = token
        listed = set(workers)
        settled = {a for a, seq in self._changed_at.items() if seq > token}
        joined = sorted(listed - self._alive - settled)
        left = sorted(self._alive - listed - settled)
        self._alive.update(joined)
        self._alive.difference_update(left)
        # Entries no later answer can be older than are dead weight: the table stays bounded.
        self._changed_at = {a: seq for a, seq in self._changed_at.items() if seq > token}
        return joined, left


def _workers_of(info: Any) -> list[str]:
    return list(info.get("workers", {})) if isinstance(info, dict) else []


class WorkerMembership:
    """The view of a client's alive workers, kept by scheduler events and a periodic snapshot.

    Args:
        client: a connected `distributed.Client`.
        refresh_s: seconds between snapshots (bounded: one thread, stopped by `close`).
    """

    def __init__(self, client: Any, refresh_s: float = REFRESH_S) -> None:
        self._client = client
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        self._state = Membership()
        self._on_lost: list[MembershipListener] = []
        self._on_joined: list[MembershipListener] = []
        self._closed = threading.Event()
        client.subscribe_topic(EVENTS_TOPIC, self._on_event)  # before the first snapshot: nothing missed
        self.refresh()
        self._thread = threading.Thread(
            target=self._refresh_loop, name="dstream-dask-membership", daemon=True
        )
        self._thread.start()

    def alive(self) -> list[str]:
        """Addresses of the workers alive now, sorted (no round trip)."""
        with self._lock:
            return self._state.alive()

    def is_alive(self, address: str) -> bool:
        with self._lock:
            return self._state.is_alive(address)

    def add_listeners(self, on_lost: MembershipListener, on_joined: MembershipListener | None = None) -> None:
        """Call `on_lost(address)` for each worker that leaves the view, `on_joined` for each that joins."""
        self._on_lost = [*self._on_lost, on_lost]
        if on_joined is not None:
            self._on_joined = [*self._on_joined, on_joined]

    def refresh(self) -> None:
        """Ask the scheduler for its worker list now and apply it (bounded by `SNAPSHOT_TIMEOUT_S`)."""
        with self._lock:
            token = self._state.token()
        try:
            info = self._client.sync(
                self._client.scheduler.identity, n_workers=-1, callback_timeout=SNAPSHOT_TIMEOUT_S
            )
        except OSError as exc:  # TimeoutError included: the next refresh tries again
            log.debug("no worker list from the scheduler: %s", exc)
            return
        with self._lock:
            joined, left = self._state.snapshot(_workers_of(info), token)
        self._tell(joined, left)

    def _on_event(self, event: tuple[float, Any]) -> None:
        _, msg = event
        if not isinstance(msg, dict) or not isinstance(msg.get("worker"), str):
            return
        action, address = msg.get("action"), msg["worker"]
        with self._lock:
            if action == "add-worker":
                joined, left = ([address] if self._state.added(address) else []), []
            elif action == "remove-worker":
                joined, left = [], ([address] if self._state.removed(address) else [])
            else:
                return
        self._tell(joined, left)

    def _tell(self, joined: list[str], left: list[str]) -> None:
        for address in left:
            log.warning("Dask worker %s left the cluster; forgetting what it held", address)
            self._call(self._on_lost, address)
        for address in joined:
            self._call(self._on_joined, address)

    @staticmethod
    def _call(listeners: list[MembershipListener], address: str) -> None:
        for listener in listeners:
            try:
                listener(address)
            except Exception:
                log.exception("membership listener %r raised for %s", listener, address)

    def _refresh_loop(self) -> None:
        while not self._closed.wait(self._refresh_s):
            try:
                self.refresh()
            except Exception:  # the client is closing under us: the loop ends with `close`
                log.debug("membership refresh failed", exc_info=True)

    def close(self) -> None:
        """Stop the refresh thread and the subscription. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._thread.join(SNAPSHOT_TIMEOUT_S + self._refresh_s)
        try:
            self._client.unsubscribe_topic(EVENTS_TOPIC)
        except (ValueError, RuntimeError):
            pass  # never subscribed, or the client is already closed
