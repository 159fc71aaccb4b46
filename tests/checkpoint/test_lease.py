"""Driver leases: the pure decision (Hypothesis), and fencing on every backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from checkpoint.errors import DriverLeaseError
from checkpoint.lease import (
    Acquire,
    DriverLease,
    EpochDriverLease,
    LeaseRecord,
    LocalDriverLease,
    Refuse,
    acquire_driver_lease,
    decide_acquire,
    decide_renew,
)
from dstream.clock import ManualClock
from tests.support.s3servers import StorageTarget

TIMEOUT_MS = 10_000

records = st.builds(
    LeaseRecord,
    epoch=st.integers(0, 100),
    owner=st.just("a"),
    nonce=st.just("n"),
    renewed_ms=st.integers(0, 50_000),
    released=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    now=st.integers(0, 60_000),
    current=st.none() | records,
    timeout=st.integers(1, 20_000),
    force=st.booleans(),
)
def test_decide_acquire(now: int, current: LeaseRecord | None, timeout: int, force: bool) -> None:
    got = decide_acquire(now, current, lease_timeout_ms=timeout, force=force)
    if current is None:
        assert got == Acquire(0)
        return
    expired = now - current.renewed_ms >= timeout
    if force or current.released or expired:
        assert got == Acquire(current.epoch + 1)
    else:
        assert isinstance(got, Refuse) and got.holder == current
        assert got.retry_after_ms == current.renewed_ms + timeout - now > 0


@given(mine=st.integers(0, 10), newest=st.none() | st.integers(0, 10))
def test_decide_renew(mine: int, newest: int | None) -> None:
    assert decide_renew(mine, newest) == ("renew" if newest == mine else "fenced")


def _so(storage: StorageTarget) -> dict[str, object]:
    return storage.storage_options


def test_second_driver_fails_fast_naming_dir_and_holder(storage: StorageTarget) -> None:
    clock = ManualClock(1_000_000)
    first = acquire_driver_lease(storage.url, "driver-A", storage_options=_so(storage), clock=clock)
    expected = LocalDriverLease if storage.kind == "local" else EpochDriverLease
    assert isinstance(first, expected)
    with pytest.raises(DriverLeaseError) as info:
        acquire_driver_lease(storage.url, "driver-B", storage_options=_so(storage), clock=clock)
    assert storage.url in str(info.value) and "driver-A" in str(info.value)
    first.check()
    first.release()
    second = acquire_driver_lease(storage.url, "driver-B", storage_options=_so(storage), clock=clock)
    second.check()
    second.release()


# Local leases are flocks, freed by the kernel only when the holder dies (tested by killing one),
# and need no renewal: expiry and renewal are object-store (epoch lease) behaviour.
def test_expired_holder_is_taken_over_and_fenced(object_storage: StorageTarget) -> None:
    storage = object_storage
    clock = ManualClock(1_000_000)
    so = _so(storage)
    zombie = acquire_driver_lease(storage.url, "old", storage_options=so, clock=clock, lease_timeout_s=10)
    clock.advance(9_999)
    with pytest.raises(DriverLeaseError, match="expires in 1 ms"):
        acquire_driver_lease(storage.url, "new", storage_options=so, clock=clock, lease_timeout_s=10)
    clock.advance(1)
    new = acquire_driver_lease(storage.url, "new", storage_options=so, clock=clock, lease_timeout_s=10)
    assert new.epoch == zombie.epoch + 1
    with pytest.raises(DriverLeaseError, match="fenced"):
        zombie.renew()
    with pytest.raises(DriverLeaseError, match="fenced"):
        zombie.check()
    new.renew()


def test_renewal_keeps_the_lease(object_storage: StorageTarget) -> None:
    storage = object_storage
    clock = ManualClock(0)
    holder = acquire_driver_lease(
        storage.url, "A", storage_options=_so(storage), clock=clock, lease_timeout_s=10
    )
    for _ in range(3):
        clock.advance(8_000)
        holder.renew()
        with pytest.raises(DriverLeaseError):
            acquire_driver_lease(
                storage.url, "B", storage_options=_so(storage), clock=clock, lease_timeout_s=10
            )


def test_force_takes_over_a_fresh_lease() -> None:
    url = f"memory://dstream-tests/lease-{uuid.uuid4().hex}"
    clock = ManualClock(0)
    a = acquire_driver_lease(url, "A", clock=clock)
    b = acquire_driver_lease(url, "B", clock=clock, force=True)
    assert b.epoch == a.epoch + 1
    with pytest.raises(DriverLeaseError, match="fenced"):
        a.check()


def test_old_epochs_are_cleaned_but_zombies_stay_fenced() -> None:
    url = f"memory://dstream-tests/lease-{uuid.uuid4().hex}"
    clock = ManualClock(0)
    leases = [acquire_driver_lease(url, f"d{i}", clock=clock, force=True) for i in range(5)]
    assert [lease.epoch for lease in leases] == [0, 1, 2, 3, 4]
    names = sorted(
        p.rsplit("/", 1)[-1]
        for p in StorageTarget("memory", url).filesystem().ls(url + "/metadata", detail=False)
    )
    assert names == ["driver-epoch-3", "driver-epoch-4", "driver-heartbeat-3", "driver-heartbeat-4"]
    for zombie in leases[:-1]:
        with pytest.raises(DriverLeaseError, match="fenced"):
            zombie.check()
    leases[-1].check()


def test_restarted_driver_waits_for_expiry_with_wait_timeout() -> None:
    url = f"memory://dstream-tests/lease-{uuid.uuid4().hex}"
    clock = ManualClock(0)
    acquire_driver_lease(url, "dead", clock=clock, lease_timeout_s=10)  # never renewed again: SIGKILLed
    got: list[DriverLease] = []
    t = threading.Thread(
        target=lambda: got.append(
            acquire_driver_lease(url, "restarted", clock=clock, lease_timeout_s=10, wait_timeout_s=30)
        )
    )
    t.start()
    clock.advance(10_000)
    t.join(timeout=30)
    assert got and got[0].epoch == 1 and got[0].owner == "restarted"


class LeaseMachine(RuleBasedStateMachine):
    """Drivers come and go on one memory directory; at most one passes check() at any time."""

    def __init__(self) -> None:
        super().__init__()
        self.url = f"memory://dstream-tests/lease-sm-{uuid.uuid4().hex}"
        self.clock = ManualClock(0)
        self.leases: list[DriverLease] = []

    @rule(force=st.booleans())
    def new_driver(self, force: bool) -> None:
        try:
            self.leases.append(
                acquire_driver_lease(
                    self.url, f"d{len(self.leases)}", clock=self.clock, lease_timeout_s=10, force=force
                )
            )
        except DriverLeaseError:
            pass

    @rule(ms=st.integers(1, 12_000))
    def time_passes(self, ms: int) -> None:
        self.clock.advance(ms)

    @rule(i=st.integers(0, 5))
    def renew(self, i: int) -> None:
        if i < len(self.leases):
            try:
                self.leases[i].renew()
            except DriverLeaseError:
                pass

    @invariant()
    def at_most_one_live_holder(self) -> None:
        live = 0
        for lease in self.leases:
            try:
                lease.check()
                live += 1
            except DriverLeaseError:
                pass
        assert live <= 1


TestLeaseMachine = LeaseMachine.TestCase
TestLeaseMachine.settings = settings(max_examples=25, stateful_step_count=12, deadline=None)


HOLDER = textwrap.dedent(
    """
    import sys
    from checkpoint.lease import acquire_driver_lease
    lease = acquire_driver_lease(sys.argv[1], "child")
    print("held", flush=True)
    sys.stdin.read()
    """
)


def close_pipes(child: subprocess.Popen[bytes]) -> None:
    """Close the pipes to a child that is gone."""
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            pipe.close()


@pytest.mark.chaos
def test_local_lease_is_free_at_once_after_sigkill(tmp_path: object) -> None:
    url = str(tmp_path) + "/ckpt"  # type: ignore[operator]
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=os.getcwd(),
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"held"
        with pytest.raises(DriverLeaseError, match="child"):
            acquire_driver_lease(url, "parent")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        acquire_driver_lease(url, "parent").release()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        close_pipes(child)


# Long enough that a holder stalled by a loaded machine still renews in time (with 1 s, a child that
# did not run for a second lost the lease before the parent looked, once in a loaded suite run).
EPOCH_LEASE_S = 5.0

EPOCH_HOLDER = textwrap.dedent(
    f"""
    import json, sys
    from checkpoint.lease import acquire_driver_lease
    so = json.loads(sys.argv[2])
    lease = acquire_driver_lease(sys.argv[1], "child", storage_options=so, lease_timeout_s={EPOCH_LEASE_S})
    print("held", flush=True)
    lease.renew_every(0.2, on_lost=lambda exc: print("lost", flush=True))
    sys.stdin.read()
    """
)


@pytest.mark.chaos
@pytest.mark.parametrize("crash", [None, "lease.after_epoch_before_heartbeat"])
def test_object_store_lease_after_sigkill_waits_for_expiry(s3_moto: StorageTarget, crash: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DSTREAM_CRASH_POINT"}
    if crash:
        env["DSTREAM_CRASH_POINT"] = crash
    child = subprocess.Popen(
        [sys.executable, "-c", EPOCH_HOLDER, s3_moto.url, json.dumps(s3_moto.storage_options)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert child.stdout is not None
        if crash is None:
            assert child.stdout.readline().strip() == b"held"
            with pytest.raises(DriverLeaseError, match="'child'"):
                acquire_driver_lease(
                    s3_moto.url,
                    "parent",
                    storage_options=s3_moto.storage_options,
                    lease_timeout_s=EPOCH_LEASE_S,
                )
            child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        lease = acquire_driver_lease(
            s3_moto.url,
            "parent",
            storage_options=s3_moto.storage_options,
            lease_timeout_s=EPOCH_LEASE_S,
            wait_timeout_s=60,
        )
        assert lease.epoch == 1
        lease.check()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        close_pipes(child)
