"""A stream is never left without a live receiver: restarts under storage errors, and their back-off.

Found by the push test under WAL faults (tests/chaos/storage_faults/test_push_under_faults.py): a store
whose tracker report failed stopped the supervisor, as designed; the tracker's restarts then read the
receiver WAL (recovery), one transient read error among the many failed each start, and the delay doubled
from 2 s to 32 s and more while the push port refused connections. Now the recovery read retries
transient errors itself, and a start that succeeded resets the tracker's back-off.
"""

from __future__ import annotations

import errno
import threading
from pathlib import Path
from typing import Any

import pytest

from dstream.client import PushClient
from dstream.clock import ManualClock, SystemClock
from dstream.config import ReceiverConfig
from dstream.rdd.storage import StorageLevel
from dstream.receiver.block_handler import BlockRecord, encode_block_record
from dstream.receiver.push import PushReceiver
from dstream.receiver.receiver import Receiver
from dstream.receiver.receiver_tracker import ReceiverTracker
from tests.receiver.helpers import WAIT_S, wait_for
from tests.receiver.test_receiver import Events, received


class FlakyReads:
    """A receiver WAL whose next `fail_reads` reads raise a transient I/O error (as under storage faults)."""

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped
        self.fail_reads = 0
        self.reads = 0

    def read_all(self) -> Any:
        self.reads += 1
        if self.fail_reads > 0:
            self.fail_reads -= 1
            raise OSError(errno.EIO, "Input/output error (injected by the test)")
        return self.wrapped.read_all()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def test_a_restart_whose_receiver_wal_reads_fail_transiently_listens_again_at_once(tmp_path: Path) -> None:
    events = Events()
    logs: list[FlakyReads] = []

    def wrap(stream_id: int, log: Any) -> FlakyReads:
        logs.append(FlakyReads(log))
        return logs[-1]

    config = ReceiverConfig.from_conf(wal_enabled=True, restart_delay_ms=10, restart_delay_max_ms=60_000)
    tracker = ReceiverTracker(
        SystemClock(), config, checkpoint_dir=str(tmp_path), events=events, receiver_wal_wrapper=wrap
    )
    receiver = PushReceiver(port=0)
    tracker.add_receiver(0, receiver)
    tracker.start()
    try:
        with PushClient("127.0.0.1", receiver.port, "p", timeout_s=WAIT_S) as client:
            assert client.send(["a"]) == 0
            (log,) = logs
            log.fail_reads, reads_before = 3, log.reads  # the restart's read fails three times, then not
            supervisor = tracker.supervisor(0)
            assert supervisor is not None
            receiver.stop("the test stops the supervisor, as a failed report after a WAL write does")
            wait_for(lambda: tracker.supervisor(0) is not supervisor and receiver.isStarted())
            assert client.send(["b"]) == 1
        assert log.fail_reads == 0 and log.reads == reads_before + 4
        retried = [m for k, _, m in events.log if k == "error" and "reading the receiver WAL" in m]
        assert len(retried) == 3 and "attempt 1 of 8" in retried[0]
        # One tracker restart only (after the stop), after the first delay: the reads did not fail it.
        restarts = [m for k, _, m in events.log if k == "error" and m.startswith("restarting in")]
        assert restarts == [restarts[0]] and restarts[0].startswith("restarting in 10 ms")
    finally:
        tracker.stop()
    assert received(tracker, 0) == ["a", "b"]


class IdleReceiver(Receiver):
    """Starts (counting its starts) and receives nothing."""

    def __init__(self) -> None:
        super().__init__(StorageLevel.MEMORY_ONLY)
        self.starts = 0

    def onStart(self) -> None:
        self.starts += 1

    def onStop(self) -> None:
        pass


def test_a_start_that_succeeded_resets_the_back_off() -> None:
    events = Events()
    clock = ManualClock(0)
    config = ReceiverConfig.from_conf(restart_delay_ms=100, restart_delay_max_ms=400, restarts_max=3)
    tracker = ReceiverTracker(clock, config, events=events)
    receiver = IdleReceiver()
    tracker.add_receiver(0, receiver)
    tracker.start()
    try:
        # Five times in a row the receiver starts and then stops on an error: each restart waits the
        # first delay (never 200, 400 ms), and five failures beyond restarts_max=3 do not give it up.
        for starts in range(1, 6):
            wait_for(lambda s=starts: receiver.starts == s and receiver.isStarted())
            receiver.stop("a store failed", OSError(errno.EIO, "injected"))
            wait_for(lambda: bool(events.log) and events.log[-1][2].startswith("restarting in"))
            assert events.log[-1][2].startswith("restarting in 100 ms"), events.log[-1]
            clock.advance(100)
        wait_for(lambda: receiver.starts == 6 and receiver.isStarted())
        assert not any("giving up" in m for _, _, m in events.log)
    finally:
        tracker.stop()


class AdoptionHeld(PushReceiver):
    """A push receiver whose adoption of unreported blocks waits until the test releases it."""

    def __init__(self) -> None:
        super().__init__(port=0)
        self.adopting = threading.Event()
        self.release = threading.Event()

    def adopt_recovered_block(
        self, records: list[Any], metadata: dict[str, Any] | None
    ) -> tuple[list[Any], dict[str, Any] | None]:
        self.adopting.set()
        assert self.release.wait(WAIT_S)
        return super().adopt_recovered_block(records, metadata)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for name in ("adopting", "release"):
            state.pop(name, None)
        return state


def test_a_restart_asked_for_while_recovering_waits_for_the_adopted_blocks(tmp_path: Path) -> None:
    """Found by `dstream drill`: chaos's receiver crash right after a driver restart started the push
    receiver while it still adopted unreported blocks, so it told producers an old durable sequence and
    refused their resends as gaps; the blocks were adopted (and committed) a moment later."""
    config = ReceiverConfig.from_conf(wal_enabled=True, restart_delay_ms=10)
    # A block the receiver WAL holds and the tracker never heard of: records 0..1 of producer "p".
    first = ReceiverTracker(SystemClock(), config, checkpoint_dir=str(tmp_path))
    now = SystemClock().time_ms()
    unreported = BlockRecord(
        0, "input-0-x-0", now, {"producers": {"p": [0, 1]}, "epochs": {"p": 1}}, ["a", "b"]
    )
    first.receiver_wal(0).write(encode_block_record(unreported), now)
    first.stop()

    tracker = ReceiverTracker(SystemClock(), config, checkpoint_dir=str(tmp_path), recover=True)
    receiver = AdoptionHeld()
    tracker.add_receiver(0, receiver)
    tracker.start()
    try:
        assert receiver.adopting.wait(WAIT_S)
        receiver.restart("chaos: injected receiver crash", None, 0)  # while the adoption is held
        stopped_waiting = threading.Event()
        assert not stopped_waiting.wait(0.3)  # give a wrongly early onStart the time to happen
        assert not receiver.isStarted()  # before the fix: started, answering from durable_seq -1
        receiver.release.set()
        wait_for(receiver.isStarted)
        with PushClient("127.0.0.1", receiver.port, "p", timeout_s=WAIT_S) as client:
            assert client.send(["c"]) == 2  # continues after the adopted records, never reuses 0..1
    finally:
        receiver.release.set()
        tracker.stop()
    assert received(tracker, 0) == ["a", "b", "c"]


def test_opening_the_receiver_wal_retries_transient_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = Events()
    tracker = ReceiverTracker(
        SystemClock(), ReceiverConfig.from_conf(wal_enabled=True), checkpoint_dir=str(tmp_path), events=events
    )
    opens = {"failures": 2}
    real_open = tracker._open

    def flaky_open(url: str, batched: bool) -> Any:
        if "receivedData" in url and opens["failures"] > 0:
            opens["failures"] -= 1
            raise OSError(errno.EIO, "Input/output error (injected by the test)")
        return real_open(url, batched)

    monkeypatch.setattr(tracker, "_open", flaky_open)
    receiver = PushReceiver(port=0)
    tracker.add_receiver(0, receiver)
    tracker.start()
    try:
        wait_for(receiver.isStarted)
        with PushClient("127.0.0.1", receiver.port, "p", timeout_s=WAIT_S) as client:
            assert client.send(["a"]) == 0
    finally:
        tracker.stop()
    retried = [m for k, _, m in events.log if k == "error"]
    assert len(retried) == 2 and all("opening the receiver WAL" in m for m in retried), retried
