"""Driver leases: at most one live driver per checkpoint directory, and a fence for a zombie one.

Storage with locks (`can_lock`: local disk): the storage's exclusive lock on
`<dir>/metadata/driver.lock` (flock). The kernel releases it when the holder dies, so a driver
restarted after a SIGKILL gets it at once, and a second live driver fails at once.

Storage without locks (object stores, fsspec memory) uses epochs:

- `metadata/driver-epoch-<n>` is written create-once by the driver that takes epoch n (its owner,
  a random nonce, the time). Of two drivers racing for epoch n, exactly one write succeeds.
- `metadata/driver-heartbeat-<n>` is overwritten by epoch n's holder on each `renew()`.
- A new driver reads the newest epoch and its heartbeat and applies `decide_acquire`: it takes epoch
  n+1 only if the holder has not renewed within `lease_timeout_s` (or released, or `force`); otherwise
  it fails fast with `DriverLeaseError` naming the directory and the holder.
- A zombie (the old holder, paused or partitioned) is fenced: its next `renew()`/`check()` sees a newer
  epoch and raises, and every name it would publish next (metadata checkpoints, commit records) is
  create-once, so it cannot replace what the new driver wrote.

Before it publishes anything durable that a successor would not see or would adopt (a receiver's
block record, the acknowledgement that follows it, a sink commit, a quarantined batch, an RDD data
checkpoint), a driver calls `ensure_held`:
while its last confirmed renewal is recent (`decide_held`: less than half the lease timeout ago, on
the monotonic clock) that is a local check; past that (the renewer fell behind, or the process was
paused), it renews on the spot, which fails with `DriverLeaseError` once a successor took a newer
epoch. A driver paused longer than its lease (a zombie) therefore learns it was fenced at its first
publish after it wakes, whatever thread gets there first, and every later call fails at once. What is
not covered: a pause that falls between `ensure_held` and the write it guards (a few instructions;
the create-once names above still hold for commits and checkpoints).

Trade-off: on an object store a driver restarted after a SIGKILL waits until the dead holder's lease
expires (up to `lease_timeout_s`, via `wait_timeout_s`) unless started with `force=True`, which an
operator should only do when sure the old driver is dead. Renewal times are compared with the
acquiring driver's clock, so clocks must agree to well within `lease_timeout_s`. Fencing between two
live drivers is exact for what they both try to create and otherwise bounded by how often the zombie
calls `check()` (the metadata writer calls it before each publish).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from checkpoint.errors import AlreadyPublishedError, CheckpointValueError, DriverLeaseError
from checkpoint.layout import (
    driver_epoch_url,
    driver_heartbeat_url,
    driver_lock_url,
    metadata_dir,
    parse_epoch,
)
from checkpoint.location import base_name, resolve
from checkpoint.publish import Publisher, publisher_for
from wal import crashpoints
from wal.errors import LockHeldError
from wal.storage import LockHandle, Storage

log = logging.getLogger(__name__)


class LeaseClock(Protocol):
    """What a lease needs from a clock (dstream.clock.Clock fits)."""

    def time_ms(self) -> int: ...

    def wait_until(self, target_ms: int, stop: threading.Event | None = None) -> int: ...


class _WallClock:
    def time_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def wait_until(self, target_ms: int, stop: threading.Event | None = None) -> int:
        event = stop or threading.Event()
        while (now := self.time_ms()) < target_ms and not event.is_set():
            event.wait(min((target_ms - now) / 1000.0, 0.1))
        return self.time_ms()


# -- the pure decision -------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseRecord:
    """The newest epoch's holder as read from storage."""

    epoch: int
    owner: str
    nonce: str
    renewed_ms: int
    released: bool = False


@dataclass(frozen=True)
class Acquire:
    epoch: int


@dataclass(frozen=True)
class Refuse:
    holder: LeaseRecord
    age_ms: int
    retry_after_ms: int


def decide_acquire(
    now_ms: int, current: LeaseRecord | None, *, lease_timeout_ms: int, force: bool = False
) -> Acquire | Refuse:
    """Whether a new driver may take the next epoch now.

    A holder that renewed less than `lease_timeout_ms` ago (by the acquirer's clock; a renewal time in
    the future counts as fresh) keeps the lease unless it released it or `force` is set.
    """
    if current is None:
        return Acquire(0)
    age_ms = now_ms - current.renewed_ms
    if force or current.released or age_ms >= lease_timeout_ms:
        return Acquire(current.epoch + 1)
    return Refuse(current, age_ms, lease_timeout_ms - age_ms)


HELD_FRACTION = 0.5  # ensure_held trusts a renewal younger than this share of the lease timeout


def decide_held(
    now_s: float, confirmed_s: float | None, lease_timeout_s: float
) -> Literal["held", "confirm"]:
    """Whether a holder may trust its lease without asking the storage (monotonic seconds).

    "held" only while the last confirmed renewal (its start, `confirmed_s`) is younger than
    `HELD_FRACTION` of the lease timeout: a successor takes over only after a full timeout without
    renewal. A clock that went backwards, or no renewal yet, means "confirm".
    """
    if confirmed_s is None or now_s < confirmed_s:
        return "confirm"
    return "held" if now_s - confirmed_s < HELD_FRACTION * lease_timeout_s else "confirm"


def decide_renew(my_epoch: int, newest_epoch: int | None) -> Literal["renew", "fenced"]:
    """A holder may renew only while its epoch is still the newest one present."""
    return "renew" if newest_epoch == my_epoch else "fenced"


# -- the I/O shells ----------------------------------------------------------------------------


class DriverLease(ABC):
    """A held lease on a checkpoint directory; `check` is the fence the metadata writer calls."""

    def __init__(self, dir_url: str, owner: str, epoch: int) -> None:
        self.dir_url = dir_url
        self.owner = owner
        self.epoch = epoch
        self._renewer: threading.Thread | None = None
        self._stop = threading.Event()

    @abstractmethod
    def renew(self) -> None:
        """Prove liveness; raises DriverLeaseError if this driver has been fenced."""

    @abstractmethod
    def check(self) -> None:
        """Raise DriverLeaseError if this driver no longer holds the lease."""

    @abstractmethod
    def _release(self) -> None: ...

    def ensure_held(self) -> None:
        """Raise DriverLeaseError unless this driver still holds the lease; call it before publishing.

        Cheap while renewals are recent (see the module docstring); this base version asks `check`.
        """
        self.check()

    def release(self) -> None:
        """Give the lease up so the next driver can take it at once."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10.0)
        self._release()

    def renew_every(
        self, interval_s: float, on_lost: Callable[[DriverLeaseError], None], clock: LeaseClock | None = None
    ) -> None:
        """Renew on a daemon thread every `interval_s` until released; report fencing to `on_lost`.

        Any other failure (a storage error) is logged and the next interval tries again: a renewer
        that died on one transient error would let the lease expire under a live driver.
        """
        clk = clock or _WallClock()

        def loop() -> None:
            while not self._stop.is_set():
                clk.wait_until(clk.time_ms() + int(interval_s * 1000), self._stop)
                if self._stop.is_set():
                    return
                try:
                    self.renew()
                except DriverLeaseError as exc:
                    on_lost(exc)
                    return
                except Exception:
                    log.warning(
                        "renewing the driver lease on %s failed; retrying", self.dir_url, exc_info=True
                    )

        self._renewer = threading.Thread(target=loop, name="dstream-lease-renewer", daemon=True)
        self._renewer.start()

    def __enter__(self) -> DriverLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder_json(owner: str, nonce: str, now_ms: int) -> dict[str, Any]:
    return {
        "owner": owner,
        "nonce": nonce,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "time_ms": now_ms,
    }


class LocalDriverLease(DriverLease):
    """The storage's lock on `<dir>/metadata/driver.lock`; the kernel frees it when the process dies."""

    def __init__(self, dir_url: str, owner: str, storage: Storage, path: str, clock: LeaseClock) -> None:
        super().__init__(dir_url, owner, epoch=0)
        self._storage = storage
        info = json.dumps(_holder_json(owner, uuid.uuid4().hex, clock.time_ms())).encode()
        try:
            self._lock: LockHandle | None = storage.lock(path, info)
        except LockHeldError as exc:
            raise DriverLeaseError(
                f"checkpoint directory {dir_url!r} is in use by another live driver ({exc.holder}); "
                "stop it first, or use another directory"
            ) from exc

    def renew(self) -> None:
        self.check()

    def check(self) -> None:
        if self._lock is None:
            raise DriverLeaseError(f"lease on {self.dir_url!r} was released")

    def _release(self) -> None:
        if self._lock is not None:
            lock, self._lock = self._lock, None
            self._storage.unlock(lock)


class EpochDriverLease(DriverLease):
    """Epoch objects written create-once plus a heartbeat object (object stores, memory)."""

    def __init__(
        self,
        dir_url: str,
        owner: str,
        epoch: int,
        nonce: str,
        publisher: Publisher,
        so: Any,
        clock: LeaseClock,
        lease_timeout_s: float = 30.0,
    ):
        super().__init__(dir_url, owner, epoch)
        self.nonce = nonce
        self._publisher = publisher
        self._so = so
        self._clock = clock
        self._released = False
        self.lease_timeout_s = lease_timeout_s
        self.monotonic: Callable[[], float] = time.monotonic  # seconds; tests replace it
        self._confirmed_s: float | None = None  # monotonic start of the last successful renewal
        self._fenced: DriverLeaseError | None = None
        self._confirm_lock = threading.Lock()

    def _heartbeat(self, released: bool = False) -> None:
        body = {
            "epoch": self.epoch,
            "owner": self.owner,
            "nonce": self.nonce,
            "renewed_ms": self._clock.time_ms(),
        }
        _, path = resolve(driver_heartbeat_url(self.dir_url, self.epoch), self._so)
        self._publisher.publish(path, json.dumps({**body, "released": released}).encode(), overwrite=True)

    def check(self) -> None:
        if self._released:
            raise DriverLeaseError(f"lease on {self.dir_url!r} was released")
        if self._fenced is not None:
            raise self._fenced
        newest = _newest_epoch(self.dir_url, self._so)
        if decide_renew(self.epoch, newest) == "fenced":
            self._fenced = DriverLeaseError(
                f"driver {self.owner!r} (epoch {self.epoch}) was fenced off {self.dir_url!r}: "
                f"newest epoch is {newest}; another driver took over"
            )
            raise self._fenced

    def renew(self) -> None:
        started = self.monotonic()
        self.check()
        self._heartbeat()
        self._confirmed_s = started

    def ensure_held(self) -> None:
        if self._released:
            raise DriverLeaseError(f"lease on {self.dir_url!r} was released")
        if self._fenced is not None:
            raise self._fenced
        if decide_held(self.monotonic(), self._confirmed_s, self.lease_timeout_s) == "held":
            return
        with self._confirm_lock:  # one renewal for every thread that found the lease stale
            if decide_held(self.monotonic(), self._confirmed_s, self.lease_timeout_s) != "held":
                self.renew()

    def _release(self) -> None:
        if not self._released:
            with contextlib.suppress(DriverLeaseError):
                self.check()
                self._heartbeat(released=True)
            self._released = True


def _epochs(dir_url: str, so: Any) -> list[int]:
    storage, path = resolve(metadata_dir(dir_url), so)
    names = (parse_epoch(base_name(name)) for name in storage.list_names(path))
    return sorted(e for e in names if e is not None)


def _newest_epoch(dir_url: str, so: Any) -> int | None:
    epochs = _epochs(dir_url, so)
    return epochs[-1] if epochs else None


def _delete_old_epochs(dir_url: str, so: Any, current: int) -> None:
    """Best effort: drop epochs older than the previous one (a zombie only needs to see a newer epoch)."""
    for epoch in _epochs(dir_url, so):
        if epoch >= current - 1:
            break
        for url in (driver_heartbeat_url(dir_url, epoch), driver_epoch_url(dir_url, epoch)):
            storage, path = resolve(url, so)
            with contextlib.suppress(OSError):  # FileNotFoundError, or a failure the next driver retries
                storage.delete(path)


def _read_record(dir_url: str, epoch: int, publisher: Publisher, so: Any) -> LeaseRecord:
    _, epoch_path = resolve(driver_epoch_url(dir_url, epoch), so)
    holder = json.loads(publisher.read(epoch_path))
    record = LeaseRecord(epoch, str(holder["owner"]), str(holder["nonce"]), int(holder["time_ms"]))
    _, hb_path = resolve(driver_heartbeat_url(dir_url, epoch), so)
    try:
        beat = json.loads(publisher.read(hb_path))
    except FileNotFoundError:
        return record
    renewed = max(record.renewed_ms, int(beat["renewed_ms"]))
    return LeaseRecord(epoch, record.owner, record.nonce, renewed, bool(beat.get("released")))


def _refusal(dir_url: str, refuse: Refuse) -> DriverLeaseError:
    h = refuse.holder
    return DriverLeaseError(
        f"checkpoint directory {dir_url!r} is in use by driver {h.owner!r} (epoch {h.epoch}, renewed "
        f"{refuse.age_ms} ms ago; its lease expires in {refuse.retry_after_ms} ms). Stop it, wait, or "
        "pass force=True if it is certainly dead"
    )


def _try_epoch_acquire(
    dir_url: str, owner: str, so: Any, clock: LeaseClock, lease_timeout_ms: int, force: bool
) -> EpochDriverLease | Refuse:
    storage, _ = resolve(dir_url, so)
    publisher = publisher_for(storage)
    newest = _newest_epoch(dir_url, so)
    current = None if newest is None else _read_record(dir_url, newest, publisher, so)
    decision = decide_acquire(clock.time_ms(), current, lease_timeout_ms=lease_timeout_ms, force=force)
    if isinstance(decision, Refuse):
        return decision
    nonce = uuid.uuid4().hex
    _, path = resolve(driver_epoch_url(dir_url, decision.epoch), so)
    try:
        publisher.publish(path, json.dumps(_holder_json(owner, nonce, clock.time_ms())).encode())
    except AlreadyPublishedError as exc:
        if not exc.identical:  # another driver won the race for this epoch
            winner = _read_record(dir_url, decision.epoch, publisher, so)
            return Refuse(winner, 0, lease_timeout_ms)
    crashpoints.crash_point(crashpoints.LEASE_AFTER_EPOCH_BEFORE_HEARTBEAT)
    lease = EpochDriverLease(
        dir_url, owner, decision.epoch, nonce, publisher, so, clock, lease_timeout_ms / 1000
    )
    started = lease.monotonic()
    lease._heartbeat()
    lease._confirmed_s = started  # the epoch was just taken: as good as a renewal
    _delete_old_epochs(dir_url, so, decision.epoch)
    return lease


def acquire_driver_lease(
    dir_url: str,
    owner: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    lease_timeout_s: float = 30.0,
    wait_timeout_s: float = 0.0,
    force: bool = False,
    clock: LeaseClock | None = None,
) -> DriverLease:
    """Take the driver lease on a checkpoint directory, or fail fast naming the holder.

    Args:
        dir_url: the checkpoint directory.
        owner: a readable name for this driver (shown to the driver that is refused).
        storage_options: fsspec options.
        lease_timeout_s: object stores: a holder silent this long is presumed dead.
        wait_timeout_s: object stores: keep retrying this long for a silent holder's lease to expire
            (a restarted driver after a SIGKILL); 0 fails at once.
        force: object stores: take over even from a holder that renewed recently.
        clock: time source (tests pass a manual clock).

    Raises:
        DriverLeaseError: another live driver holds the directory.
        CheckpointValueError: bad owner or timeouts.
    """
    if not isinstance(owner, str) or not owner:
        raise CheckpointValueError(f"owner must be a non-empty string, got {owner!r}")
    if lease_timeout_s <= 0 or wait_timeout_s < 0:
        raise CheckpointValueError(
            f"need lease_timeout_s > 0 and wait_timeout_s >= 0, got {lease_timeout_s}, {wait_timeout_s}"
        )
    clk = clock or _WallClock()
    storage, lock_path = resolve(driver_lock_url(dir_url), storage_options)
    if storage.can_lock:
        return LocalDriverLease(dir_url, owner, storage, lock_path, clk)
    deadline_ms = clk.time_ms() + int(wait_timeout_s * 1000)
    so = dict(storage_options or {})
    while True:
        outcome = _try_epoch_acquire(dir_url, owner, so, clk, int(lease_timeout_s * 1000), force)
        if isinstance(outcome, EpochDriverLease):
            return outcome
        retry_ms = clk.time_ms() + max(outcome.retry_after_ms, 1)
        if retry_ms > deadline_ms:
            raise _refusal(dir_url, outcome)
        clk.wait_until(retry_ms)
