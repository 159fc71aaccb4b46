"""The driver's view of alive Dask workers (dstream.backends.dask.membership).

`Membership` against a model scheduler whose events arrive in order while its snapshots may be stale
(asked for before some events, answered after others, applied in any order): a snapshot never brings
back a worker whose removal the view has seen unless the scheduler really listed it again since, and
once every event has arrived and a fresh snapshot is applied the view is the scheduler's membership.

`WorkerMembership.run` against a client on a real event loop whose calls to a chosen address never
answer (a worker that died a moment before the view heard of it, whose connect would retry for 30 s):
the call ends as soon as that worker leaves the view, and goes on with the workers still alive.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dstream.backends.dask.membership import Membership, WorkerMembership

ADDRESSES = ["tcp://a", "tcp://b", "tcp://c"]  # few, so that addresses are reused


@dataclass
class Request:
    token: int
    asked_at: int  # events emitted when asked: the scheduler answers with a state at least this new
    answer: tuple[int, frozenset[str]] | None = None  # (events emitted when answered, workers listed)


@dataclass
class Scheduler:
    events: list[tuple[str, str]] = field(default_factory=list)  # ("add" | "remove", address)
    initial: frozenset[str] = frozenset({"tcp://a"})  # present before the view subscribed: no event

    def members_after(self, n: int) -> frozenset[str]:
        members = set(self.initial)
        for kind, address in self.events[:n]:
            (members.add if kind == "add" else members.discard)(address)
        return frozenset(members)


class MembershipMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.view = Membership()
        self.scheduler = Scheduler()
        self.delivered = 0
        self.requests: list[Request] = []
        # address -> the newest scheduler state (events emitted) of an applied snapshot listing it
        self.listed_at: dict[str, int] = {}
        self.applied_token = -1  # the view drops answers to requests older than the newest applied

    @rule(address=st.sampled_from(ADDRESSES))
    def scheduler_adds_or_removes(self, address: str) -> None:
        now = self.scheduler.members_after(len(self.scheduler.events))
        self.scheduler.events.append(("remove" if address in now else "add", address))

    @precondition(lambda self: self.delivered < len(self.scheduler.events))
    @rule()
    def an_event_arrives(self) -> None:
        kind, address = self.scheduler.events[self.delivered]
        self.delivered += 1
        if kind == "add":
            self.view.added(address)
        else:
            self.view.removed(address)

    @rule()
    def a_snapshot_is_asked_for(self) -> None:
        self.requests.append(Request(self.view.token(), len(self.scheduler.events)))

    @rule(data=st.data())
    def the_scheduler_answers(self, data: st.DataObject) -> None:
        waiting = [r for r in self.requests if r.answer is None]
        if waiting:
            request = data.draw(st.sampled_from(waiting))
            n = len(self.scheduler.events)
            request.answer = (n, self.scheduler.members_after(n))

    @rule(data=st.data())
    def an_answer_arrives(self, data: st.DataObject) -> None:
        answered = [r for r in self.requests if r.answer is not None]
        if not answered:
            return
        request = data.draw(st.sampled_from(answered))
        self.requests.remove(request)
        assert request.answer is not None
        state, workers = request.answer
        self._apply(workers, request.token, state)

    def _apply(self, workers: frozenset[str], token: int, state: int) -> None:
        self.view.snapshot(workers, token)
        if token >= self.applied_token:
            self.applied_token = token
            for address in workers:
                self.listed_at[address] = max(self.listed_at.get(address, -1), state)

    def _last_delivered(self, address: str) -> tuple[int, str] | None:
        for i in range(self.delivered - 1, -1, -1):
            kind, a = self.scheduler.events[i]
            if a == address:
                return i + 1, kind
        return None

    @invariant()
    def a_seen_removal_is_undone_only_by_a_newer_listing(self) -> None:
        for address in ADDRESSES:
            last = self._last_delivered(address)
            if last is not None and last[1] == "remove" and self.view.is_alive(address):
                assert self.listed_at.get(address, -1) >= last[0], (address, last, self.listed_at)

    @rule()
    def everything_arrives_and_a_fresh_snapshot_agrees(self) -> None:
        while self.delivered < len(self.scheduler.events):
            self.an_event_arrives()
        n = len(self.scheduler.events)
        self._apply(self.scheduler.members_after(n), self.view.token(), n)
        assert set(self.view.alive()) == self.scheduler.members_after(n)
        assert self.view.alive() == sorted(self.view.alive())


TestMembership = MembershipMachine.TestCase
# Pure and fast: more, shorter runs find the few-step races (a snapshot answered just before a removal).
TestMembership.settings = settings(max_examples=400, stateful_step_count=25)


def test_an_answer_older_than_one_applied_is_dropped() -> None:
    view = Membership()
    old = view.token()
    view.added("tcp://a")
    new = view.token()
    assert view.snapshot(["tcp://a", "tcp://b"], new) == (["tcp://b"], [])
    assert view.snapshot([], old) == ([], [])  # stale: it would drop both
    assert view.alive() == ["tcp://a", "tcp://b"]


def test_a_removal_event_wins_over_a_snapshot_asked_for_before_it() -> None:
    view = Membership()
    view.added("tcp://a")
    token = view.token()
    view.removed("tcp://a")  # the worker died while the snapshot was on its way
    assert view.snapshot(["tcp://a"], token) == ([], [])
    assert not view.is_alive("tcp://a")
    assert view.snapshot([], view.token()) == ([], [])


class LoopClient:
    """Enough of a `distributed.Client` for `WorkerMembership`: an event loop thread, events, `run`."""

    def __init__(self, workers: list[str], silent: set[str]) -> None:
        self.workers = set(workers)
        self.silent = silent  # calls that include one of these never answer
        self.unreachable: set[str] = set()  # direct calls to these fail to connect
        self.calls: list[list[str]] = []
        self.called = threading.Event()
        self.handler: Callable[[tuple[float, Any]], None] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.loop = self
        self.scheduler = self

    def add_callback(self, func: Callable[..., None], *args: Any) -> None:
        self._loop.call_soon_threadsafe(func, *args)

    def subscribe_topic(self, topic: str, handler: Callable[[tuple[float, Any]], None]) -> None:
        self.handler = handler

    def unsubscribe_topic(self, topic: str) -> None:
        self.handler = None

    async def identity(self, n_workers: int) -> dict[str, Any]:
        return {"workers": {w: {} for w in self.workers}}

    def sync(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any, **kwargs: Any) -> Any:
        timeout = kwargs.pop("callback_timeout")
        call = asyncio.wait_for(func(*args, **kwargs), timeout)
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    def run(self, func: Callable[[], Any], *, workers: list[str], on_error: str, asynchronous: bool) -> Any:
        async def call() -> dict[str, Any]:
            self.calls.append(list(workers))
            self.called.set()
            if self.silent & set(workers):
                await asyncio.Event().wait()  # never answers
            return {w: func() for w in workers}

        return call()

    def rpc(self, address: str) -> Any:
        """A direct connection to one worker: its `echo` handler answers `value`, raises `error`."""
        client = self

        class Handlers:
            async def echo(self, value: Any = None, error: str = "") -> Any:
                client.calls.append([address])
                client.called.set()
                if address in client.silent:
                    await asyncio.Event().wait()  # never answers
                if address in client.unreachable:
                    raise ConnectionRefusedError(f"nothing listens at {address}")
                if error:
                    raise ValueError(error)
                return value

        return Handlers()

    def remove(self, address: str) -> None:
        """The scheduler removes a worker and logs the event."""
        self.workers.discard(address)
        assert self.handler is not None
        event = (0.0, {"action": "remove-worker", "worker": address})
        self._loop.call_soon_threadsafe(self.handler, event)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT_S)
        self._loop.close()


WAIT_S = 60.0


@pytest.fixture
def loop_client() -> Iterator[LoopClient]:
    client = LoopClient(["tcp://a", "tcp://dead"], silent={"tcp://dead"})
    yield client
    client.close()


def test_a_call_in_flight_is_abandoned_when_a_target_leaves_and_goes_on_with_the_rest(
    loop_client: LoopClient,
) -> None:
    members = WorkerMembership(loop_client, refresh_s=WAIT_S)
    try:
        assert members.alive() == ["tcp://a", "tcp://dead"]
        found: list[dict[str, Any]] = []
        caller = threading.Thread(
            target=lambda: found.append(members.run(lambda: 7, workers=None, timeout_s=1e4)),
            daemon=True,  # if the call were never abandoned, it must not keep the test process alive
        )
        caller.start()
        assert loop_client.called.wait(WAIT_S)
        loop_client.remove("tcp://dead")
        caller.join(WAIT_S)
        assert found == [{"tcp://a": 7}]
        assert loop_client.calls == [["tcp://a", "tcp://dead"], ["tcp://a"]]
        assert members.run(lambda: 7, workers=["tcp://dead"], timeout_s=1e4) == {}  # never sent
        assert len(loop_client.calls) == 2
    finally:
        members.close()


def test_a_call_that_never_answers_ends_at_its_bound(loop_client: LoopClient) -> None:
    members = WorkerMembership(loop_client, refresh_s=WAIT_S)
    try:
        assert members.run(lambda: 7, workers=["tcp://dead"], timeout_s=0.05) == {}
    finally:
        members.close()


def test_a_direct_call_reaches_each_live_target_and_abandons_one_that_leaves(loop_client: LoopClient) -> None:
    members = WorkerMembership(loop_client, refresh_s=WAIT_S)
    try:
        found: list[dict[str, Any]] = []
        caller = threading.Thread(
            target=lambda: found.append(members.call(["tcp://a", "tcp://dead"], "echo", 1e4, value=7)),
            daemon=True,  # if the call were never abandoned, it must not keep the test process alive
        )
        caller.start()
        while len(loop_client.calls) < 2:  # both calls are in flight: the silent one never answers
            assert loop_client.called.wait(WAIT_S)
            loop_client.called.clear()
        loop_client.remove("tcp://dead")
        caller.join(WAIT_S)
        assert found == [{"tcp://a": 7}]
        assert sorted(loop_client.calls) == [["tcp://a"], ["tcp://dead"]]
        assert members.call(["tcp://dead"], "echo", 1e4, value=7) == {}  # never sent
        assert len(loop_client.calls) == 2
    finally:
        members.close()


def test_a_direct_call_leaves_out_an_unreachable_worker_and_returns_a_workers_error(
    loop_client: LoopClient,
) -> None:
    loop_client.workers.add("tcp://b")
    loop_client.unreachable.add("tcp://b")
    members = WorkerMembership(loop_client, refresh_s=WAIT_S)
    try:
        assert members.call(["tcp://b"], "echo", 1e4, value=7) == {}
        found = members.call(["tcp://a"], "echo", 1e4, error="no such block")
        assert list(found) == ["tcp://a"]
        assert isinstance(found["tcp://a"], ValueError) and str(found["tcp://a"]) == "no such block"
    finally:
        members.close()


def test_a_direct_call_that_never_answers_ends_at_its_bound(loop_client: LoopClient) -> None:
    members = WorkerMembership(loop_client, refresh_s=WAIT_S)
    try:
        assert members.call(["tcp://a", "tcp://dead"], "echo", 0.05, value=7) == {"tcp://a": 7}
    finally:
        members.close()
