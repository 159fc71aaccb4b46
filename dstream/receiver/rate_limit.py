"""Records-per-second limits of a receiver: a token bucket (pure) and the limiter that waits on it.

`spark.streaming.receiver.maxRate` and the backpressure estimate (`dstream.streaming.rate_controller`)
both end here. The supervisor holds one `RateLimiter` per receiver and takes tokens for every record
before storing it: one for `store(record)`, n for `store(list of n)`. A list larger than the bucket is
admitted in pieces of at most a bucket each, so it waits in proportion to its size and never starves.
Because the limiter lives in the supervisor, wherever a supervisor runs (the driver today, a worker
later) it limits its receiver unchanged.

`TokenBucket` is the decision: given the time, how many records may pass and how long until the next
ones may. It holds at most one second of tokens (`capacity = rate * 1 s`, at least one record), the
burst Guava's SmoothBursty limiter (Spark's) allows. `RateLimiter` is the thin shell: it asks the
bucket, waits on the injected clock, and wakes at once when the stop event is set.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from dstream.clock import Clock
from dstream.errors import DStreamValueError

BURST_S = 1.0  # a full bucket holds this many seconds of records


def check_rate(name: str, rate_per_s: float | None) -> float | None:
    """`rate_per_s` if it is None or a finite number > 0; else DStreamValueError naming `name`."""
    if rate_per_s is None:
        return None
    if isinstance(rate_per_s, bool) or not isinstance(rate_per_s, int | float):
        raise DStreamValueError(f"{name} must be a number of records per second or None, got {rate_per_s!r}")
    if not math.isfinite(rate_per_s) or rate_per_s <= 0:
        raise DStreamValueError(f"{name} must be a finite number > 0 or None, got {rate_per_s!r}")
    return float(rate_per_s)


@dataclass
class TokenBucket:
    """Tokens refill at `rate_per_s` up to `capacity`; a record takes one.

    Attributes:
        rate_per_s: records per second.
        tokens: tokens available at `updated_ms`.
        updated_ms: when `tokens` was computed.
    """

    rate_per_s: float
    tokens: float
    updated_ms: int

    @classmethod
    def full(cls, rate_per_s: float, now_ms: int) -> TokenBucket:
        """A bucket that starts with one burst available."""
        return cls(rate_per_s, capacity_of(rate_per_s), now_ms)

    @property
    def capacity(self) -> float:
        return capacity_of(self.rate_per_s)

    def refill(self, now_ms: int) -> None:
        """Add the tokens earned since `updated_ms` (time never runs backwards here)."""
        if now_ms > self.updated_ms:
            earned = (now_ms - self.updated_ms) * self.rate_per_s / 1000.0
            self.tokens = min(self.capacity, self.tokens + earned)
            self.updated_ms = now_ms

    def set_rate(self, rate_per_s: float, now_ms: int) -> None:
        """Change the rate from `now_ms` on; tokens already earned stay (capped to the new capacity)."""
        self.refill(now_ms)
        self.rate_per_s = rate_per_s
        self.tokens = min(self.tokens, self.capacity)

    def take(self, wanted: int, now_ms: int) -> int:
        """Take up to `wanted` whole tokens available at `now_ms`; returns how many were taken."""
        self.refill(now_ms)
        taken = min(wanted, int(self.tokens))
        self.tokens -= taken
        return taken

    def wait_ms(self, wanted: int) -> int:
        """Milliseconds after `updated_ms` until min(wanted, capacity) tokens are available."""
        target = min(float(wanted), self.capacity)
        missing = target - self.tokens
        return 0 if missing <= 0 else math.ceil(missing * 1000.0 / self.rate_per_s)


def effective_rate(max_rate_per_s: float | None, estimate_per_s: float | None) -> float | None:
    """The limit a receiver applies: the estimate capped by maxRate (Spark's RateLimiter.updateRate)."""
    if estimate_per_s is None:
        return max_rate_per_s
    return estimate_per_s if max_rate_per_s is None else min(estimate_per_s, max_rate_per_s)


def capacity_of(rate_per_s: float) -> float:
    """Tokens a full bucket holds: one burst of `BURST_S` seconds, at least one record."""
    return max(1.0, math.floor(rate_per_s * BURST_S))


class RateLimiter:
    """Makes callers wait so that at most `rate_per_s` records pass per second (None: no limit).

    Args:
        clock: the time the bucket refills on (tests pass a ManualClock).
        rate_per_s: the initial limit, or None for none.
        stop: when set, waiting callers wake and pass at once (a stopping receiver flushes what it took).
    """

    def __init__(self, clock: Clock, rate_per_s: float | None, stop: threading.Event) -> None:
        self._clock = clock
        self._stop = stop
        self._lock = threading.Lock()
        rate = check_rate("rate_per_s", rate_per_s)
        self._bucket = None if rate is None else TokenBucket.full(rate, clock.time_ms())

    @property
    def rate_per_s(self) -> float | None:
        bucket = self._bucket
        return None if bucket is None else bucket.rate_per_s

    @property
    def piece_records_max(self) -> int | None:
        """Records one wait admits at most (a full bucket), or None without a limit."""
        bucket = self._bucket
        return None if bucket is None else int(bucket.capacity)

    def set_rate(self, rate_per_s: float | None) -> None:
        """Change the limit (None lifts it); waiting callers use the new rate from their next piece on."""
        rate = check_rate("rate_per_s", rate_per_s)
        with self._lock:
            now_ms = self._clock.time_ms()
            if rate is None:
                self._bucket = None
            elif self._bucket is None:
                self._bucket = TokenBucket.full(rate, now_ms)
            else:
                self._bucket.set_rate(rate, now_ms)

    def acquire(self, records: int) -> None:
        """Wait until `records` records may pass (in pieces of at most one bucket), or the stop event."""
        if self._bucket is None:  # no limit: the common case, no lock on the receiving hot path
            return
        remaining = records
        while remaining > 0:
            with self._lock:
                bucket = self._bucket
                if bucket is None:
                    return
                now_ms = self._clock.time_ms()
                remaining -= bucket.take(min(remaining, int(bucket.capacity)), now_ms)
                wake_ms = now_ms + bucket.wait_ms(remaining) if remaining > 0 else now_ms
            if remaining > 0:
                if self._stop.is_set():
                    return
                self._clock.wait_until(wake_ms, self._stop)
