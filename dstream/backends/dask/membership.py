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

Calls to workers go through the view too (`WorkerMembership.run`, a `Client.run` on the targets alive
in it, which the scheduler relays; `WorkerMembership.call`, a message straight to a handler of each
target, for payloads that should cross the wire once): a call is never sent to a worker the view knows
dead, and a call in flight when one of its targets leaves the view is abandoned at once (`run` sends it
again to the targets still alive: the block actions it carries are idempotent), instead of waiting out
the connect timeout; every call is bounded.

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

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

EVENTS_TOPIC = "all"  # the scheduler's topic carrying add-worker and remove-worker
REFRESH_S = 2.0  # how often a snapshot double-checks the event stream
SNAPSHOT_TIMEOUT_S = 10.0  # bound on one snapshot's round trip to the scheduler
CALL_ROUNDS_MAX = 3  # a call abandoned because a target left is sent again at most this often in all
_NO_ANSWER = object()  # a direct call abandoned: its worker left, is unreachable or was silent too long

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
        # Calls in flight: their targets and a future set when one of them leaves (event loop only).
        self._watches: list[tuple[frozenset[str], asyncio.Future[None]]] = []
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

    def run(
        self, func: Callable[..., Any], *args: Any, workers: list[str] | None, timeout_s: float
    ) -> dict[str, Any]:
        """`Client.run(func, *args)` on those of `workers` (default: all) alive in the view, by address.

        A worker's own error comes back as its value (``on_error="return"``). A worker that leaves
        while the call runs abandons the call, which is sent again to the targets still alive
        (`CALL_ROUNDS_MAX` rounds at most). Returns {} when no target is alive, none is left, or
        `timeout_s` passed.
        """
        try:
            found: dict[str, Any] = self._client.sync(
                self._run_watched, func, args, workers, timeout_s, callback_timeout=timeout_s + 1.0
            )
        except OSError:  # TimeoutError included: a target stopped answering and never left the view
            return {}
        return found

    def _targets(self, workers: list[str] | None) -> list[str]:
        alive = self.alive()
        if workers is None:
            return alive
        known = set(alive)
        return [w for w in workers if w in known]

    async def _run_watched(
        self, func: Callable[..., Any], args: tuple[Any, ...], workers: list[str] | None, timeout_s: float
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        for _ in range(CALL_ROUNDS_MAX):
            targets = self._targets(workers)
            if not targets:
                return {}
            left: asyncio.Future[None] = loop.create_future()
            watch = (frozenset(targets), left)
            self._watches.append(watch)
            call = asyncio.ensure_future(
                self._client.run(func, *args, workers=targets, on_error="return", asynchronous=True)
            )
            try:
                done, _ = await asyncio.wait(
                    {call, left},
                    timeout=max(0.0, deadline - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                self._watches.remove(watch)
            if call in done:
                found: dict[str, Any] = call.result()
                return found
            call.cancel()
            if left not in done:
                raise TimeoutError(f"no answer from {targets} within {timeout_s:g} s")
        return {}

    def call(self, workers: list[str], handler: str, timeout_s: float, **msg: Any) -> dict[str, Any]:
        """`msg` straight to the RPC `handler` of each of `workers` alive in the view, all at once (not
        relayed by the scheduler, as `run` is); the answers by address, a worker's own error as its value.

        A worker not alive in the view is not called; one that leaves while its call runs, whose
        connection fails, or that does not answer within `timeout_s` is left out of the answers.
        """
        try:
            found: dict[str, Any] = self._client.sync(
                self._call_all, workers, handler, msg, timeout_s, callback_timeout=timeout_s + 1.0
            )
        except OSError:  # TimeoutError included: the event loop itself did not get to the calls in time
            return {}
        return found

    async def _call_all(
        self, workers: list[str], handler: str, msg: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        targets = self._targets(workers)
        # Watched in the same loop step as the view was read: a worker that leaves after is noticed.
        left = {a: loop.create_future() for a in targets}
        watches = [(frozenset([a]), future) for a, future in left.items()]
        self._watches.extend(watches)
        try:
            calls = [self._call_one(a, left[a], handler, msg, timeout_s) for a in targets]
            answers = await asyncio.gather(*calls)
        finally:
            for watch in watches:
                self._watches.remove(watch)
        return {a: answer for a, answer in zip(targets, answers, strict=True) if answer is not _NO_ANSWER}

    async def _call_one(
        self, address: str, left: asyncio.Future[None], handler: str, msg: dict[str, Any], timeout_s: float
    ) -> Any:
        call = asyncio.ensure_future(getattr(self._client.rpc(address), handler)(**msg))
        done, _ = await asyncio.wait({call, left}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if call not in done:
            call.cancel()
            return _NO_ANSWER
        try:
            return call.result()
        except OSError:  # the connection failed or closed: the worker is gone, or going
            return _NO_ANSWER
        except Exception as exc:
            return exc

    def _notify_left(self, left: list[str]) -> None:
        """Abandon the calls in flight to a worker that left (runs on the event loop)."""
        gone = set(left)
        for targets, future in self._watches:
            if targets & gone and not future.done():
                future.set_result(None)

    def _tell(self, joined: list[str], left: list[str]) -> None:
        if self._closed.is_set():
            return  # the backend is stopping: its workers leave with it, which is no loss
        loop = self._client.loop if left else None
        if loop is not None:
            loop.add_callback(self._notify_left, left)
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
