"""`ensure_held`, the fence a driver checks before it publishes: cheap while renewals are recent, and a
driver paused longer than its lease learns at its first publish after it wakes that it was fenced."""

from __future__ import annotations

import threading
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkpoint.errors import DriverLeaseError
from checkpoint.lease import HELD_FRACTION, EpochDriverLease, acquire_driver_lease, decide_held
from dstream.clock import ManualClock

TIMEOUT_S = 10.0


@given(
    now=st.floats(0, 1e6, allow_nan=False),
    confirmed=st.none() | st.floats(0, 1e6, allow_nan=False),
    timeout=st.floats(0.1, 1e3, allow_nan=False),
)
def test_decide_held_trusts_only_a_recent_renewal(
    now: float, confirmed: float | None, timeout: float
) -> None:
    got = decide_held(now, confirmed, timeout)
    fresh = confirmed is not None and 0 <= now - confirmed < HELD_FRACTION * timeout
    assert got == ("held" if fresh else "confirm")
    if got == "held":  # never trusted as long as a successor could have taken over
        assert confirmed is not None and now - confirmed < timeout


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def held_lease(url: str, clock: ManualClock) -> tuple[EpochDriverLease, FakeMonotonic]:
    lease = acquire_driver_lease(url, "zombie", clock=clock, lease_timeout_s=TIMEOUT_S)
    assert isinstance(lease, EpochDriverLease)
    mono = FakeMonotonic()
    lease.monotonic = mono
    lease.renew()  # confirmed on the fake clock
    return lease, mono


def test_a_driver_paused_past_its_lease_is_fenced_at_its_first_publish_and_stays_fenced() -> None:
    url = f"memory://dstream-tests/fence-{uuid.uuid4().hex}"
    clock = ManualClock(0)
    zombie, mono = held_lease(url, clock)
    zombie.ensure_held()
    clock.advance(int(TIMEOUT_S * 1000))  # SIGSTOPped for a whole lease timeout ...
    mono.now += TIMEOUT_S
    successor = acquire_driver_lease(url, "successor", clock=clock, lease_timeout_s=TIMEOUT_S)
    assert successor.epoch == zombie.epoch + 1
    with pytest.raises(DriverLeaseError, match="fenced"):  # ... and woken: its first publish is refused
        zombie.ensure_held()
    mono.now -= TIMEOUT_S  # even a clock that looks fresh again does not un-fence it
    with pytest.raises(DriverLeaseError, match="fenced"):
        zombie.ensure_held()
    successor.ensure_held()


def test_a_stale_but_unchallenged_lease_is_renewed_on_the_spot() -> None:
    url = f"memory://dstream-tests/fence-{uuid.uuid4().hex}"
    clock = ManualClock(0)
    holder, mono = held_lease(url, clock)
    clock.advance(int(TIMEOUT_S * 1000 * 0.6))  # the renewer fell behind past the trusted share
    mono.now += TIMEOUT_S * 0.6
    holder.ensure_held()  # no successor: it renews, so a driver started now is refused
    clock.advance(int(TIMEOUT_S * 1000 * 0.6))
    with pytest.raises(DriverLeaseError, match="in use"):
        acquire_driver_lease(url, "other", clock=clock, lease_timeout_s=TIMEOUT_S)


def test_a_released_lease_fences() -> None:
    url = f"memory://dstream-tests/fence-{uuid.uuid4().hex}"
    lease, _ = held_lease(url, ManualClock(0))
    lease.release()
    with pytest.raises(DriverLeaseError, match="released"):
        lease.ensure_held()


class FlakyLease(EpochDriverLease):
    """Fails its first renewal with a storage error, then counts renewals."""

    def __init__(self, inner: EpochDriverLease) -> None:
        self.__dict__.update(inner.__dict__)
        self.attempts = 0
        self.renewed_after_error = threading.Event()

    def renew(self) -> None:
        self.attempts += 1
        if self.attempts == 1:
            raise OSError(5, "EIO: injected")
        super().renew()
        self.renewed_after_error.set()


def test_the_renewer_survives_a_storage_error() -> None:
    url = f"memory://dstream-tests/fence-{uuid.uuid4().hex}"
    inner = acquire_driver_lease(url, "holder", lease_timeout_s=TIMEOUT_S)
    assert isinstance(inner, EpochDriverLease)
    lease = FlakyLease(inner)
    lost: list[DriverLeaseError] = []
    lease.renew_every(0.01, lost.append)
    try:
        assert lease.renewed_after_error.wait(30.0)
    finally:
        lease.release()
    assert lease.attempts >= 2 and not lost
