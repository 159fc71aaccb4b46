"""BlockGenerator: cuts a receiver's records into blocks every block interval, with bounded memory.

Records added with `add_data` go into the current buffer. A timer thread, driven by the injected clock,
cuts the buffer into a block at every multiple of `block_interval_ms` and puts it on a queue of at most
`queue_size_max` blocks; a pusher thread hands queued blocks, in order, to the listener's
`on_push_block` (which stores and reports them). When the pusher falls behind, the queue fills, cutting
blocks while holding the buffer lock, so `add_data` blocks: a fast receiver is slowed instead of growing
memory without bound. A buffer that reaches `block_records_max` is cut early for the same reason, so at
most about `(queue_size_max + 2) * block_records_max` records are held. The records-per-second limit
is not here: the supervisor's `RateLimiter` (rate_limit.py) applies it to single records and lists alike.

`add_data` returns the `PendingBlock` its record joined; waiting on it tells the caller when that block
was pushed (durable, with the WAL on) or why pushing failed. `add_many` adds a list of records to the
current block in one call (one lock, one extend), cutting early at `block_records_max` as `add_data`
does, and returns every block they joined: a source that reads many records at once (the socket
receiver's line splitter) gets blocks of a block interval each, not one block per read.

Stop order (Spark's): stop accepting data (later `add_data` raises), cut a final block, drain the queue,
then report stopped; every accepted record is pushed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from dstream.clock import Clock
from dstream.errors import DStreamError, DStreamStateError, DStreamValueError

BLOCK_INTERVAL_MS_DEFAULT = 200
QUEUE_SIZE_MAX_DEFAULT = 10
BLOCK_RECORDS_MAX_DEFAULT = 100_000
_POLL_S = 0.05  # how often blocked threads re-check for stop


class PendingBlock:
    """A block being filled or pushed; `wait` returns once it is pushed and raises if pushing failed."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.block_id: str | None = None
        self._done = threading.Event()
        self._error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        self._error = error
        self._done.set()

    def wait(self, timeout_s: float) -> None:
        if not self._done.wait(timeout_s):
            raise DStreamError(f"block {self.block_id or '(not cut yet)'} not stored within {timeout_s} s")
        if self._error is not None:
            raise DStreamError(f"storing block {self.block_id} failed: {self._error}") from self._error


class BlockGenerator:
    """Cut records into blocks on clock ticks and push them, in order, through `push_block`.

    Args:
        push_block: called on the pusher thread with (block_id, records); must store the block.
        on_error: called with (message, error) when `push_block` raises.
        new_block_id: returns a fresh, unique block id.
        clock: drives the block interval and the rate limit.
        block_interval_ms: time between cuts.
        queue_size_max: blocks waiting to be pushed at most.
        block_records_max: records per block at most (a fuller buffer is cut early).
    """

    def __init__(
        self,
        push_block: Callable[[str, list[Any]], None],
        on_error: Callable[[str, BaseException], None],
        new_block_id: Callable[[], str],
        clock: Clock,
        block_interval_ms: int = BLOCK_INTERVAL_MS_DEFAULT,
        queue_size_max: int = QUEUE_SIZE_MAX_DEFAULT,
        block_records_max: int = BLOCK_RECORDS_MAX_DEFAULT,
    ) -> None:
        for name, value in (
            ("block_interval_ms", block_interval_ms),
            ("queue_size_max", queue_size_max),
            ("block_records_max", block_records_max),
        ):
            if not isinstance(value, int) or value <= 0:
                raise DStreamValueError(f"{name} must be a positive int, got {value!r}")
        self._push_block, self._on_error, self._new_block_id = push_block, on_error, new_block_id
        self._clock = clock
        self.block_interval_ms = block_interval_ms
        self.block_records_max = block_records_max
        self._queue: queue.Queue[PendingBlock] = queue.Queue(maxsize=queue_size_max)
        self._lock = threading.Lock()
        self._current = PendingBlock()
        self._state = "initialized"
        self._stop_timer = threading.Event()
        self._timer_done = threading.Event()
        self._threads: list[threading.Thread] = []
        # Observable state, for tests and benchmarks: records accepted and pushed, the tick the timer
        # waits for, and whether an adder waits for room in the queue.
        self._state_changed = threading.Condition()
        self.records_added = 0
        self._next_cut_ms = -1
        self.records_pushed = 0
        self._blocked_adders = 0

    def start(self) -> None:
        if self._state != "initialized":
            raise DStreamStateError(f"BlockGenerator cannot start when {self._state}; it starts once")
        self._state = "active"
        for target, name in ((self._run_timer, "block-timer"), (self._run_pusher, "block-pusher")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def add_data(self, record: Any) -> PendingBlock:
        """Add one record; blocks while the queue is full."""
        with self._lock:
            if self._state != "active":
                raise DStreamStateError(f"cannot add data to a BlockGenerator that is {self._state}")
            pending = self._current
            pending.records.append(record)
            self.records_added += 1
            if len(pending.records) >= self.block_records_max:
                self._cut_locked()
            return pending

    def add_many(self, records: list[Any], block_records_max: int | None = None) -> list[PendingBlock]:
        """Add records to the current block (cut at `block_records_max`); blocks while the queue is full.

        `block_records_max` may lower the generator's own bound for these records. Returns the blocks
        the records joined, in order (the last one may still be filling).
        """
        cut_at = (
            self.block_records_max
            if block_records_max is None
            else min(block_records_max, self.block_records_max)
        )
        with self._lock:
            if self._state != "active":
                raise DStreamStateError(f"cannot add data to a BlockGenerator that is {self._state}")
            joined: list[PendingBlock] = []
            taken = 0
            while taken < len(records):
                pending = self._current
                room = max(cut_at - len(pending.records), 1)
                pending.records.extend(records[taken : taken + room])
                taken += room
                joined.append(pending)
                if len(pending.records) >= cut_at:
                    self._cut_locked()
            self.records_added += len(records)
            return joined

    def _cut_locked(self) -> None:
        """Move the current buffer to the queue (blocking while it is full). Caller holds the lock."""
        pending = self._current
        if not pending.records:
            return
        pending.block_id = self._new_block_id()
        self._current = PendingBlock()
        try:
            self._queue.put_nowait(pending)
            return
        except queue.Full:
            self._set_blocked(1)
        try:
            while True:
                try:
                    self._queue.put(pending, timeout=_POLL_S)
                    return
                except queue.Full:
                    if not any(t.is_alive() for t in self._threads[1:]):
                        raise DStreamStateError("block pusher died; cannot queue more blocks") from None
        finally:
            self._set_blocked(-1)

    def _set_blocked(self, delta: int) -> None:
        with self._state_changed:
            self._blocked_adders += delta
            self._state_changed.notify_all()

    def wait_until_blocked(self, timeout_s: float) -> bool:
        """Wait until an adder waits for room in the full queue; False on timeout."""
        with self._state_changed:
            return self._state_changed.wait_for(lambda: self._blocked_adders > 0, timeout=timeout_s)

    def wait_for_timer(self, after_ms: int, timeout_s: float) -> int | None:
        """The tick the timer waits for, once it is later than `after_ms`; None on timeout.

        A test driving a ManualClock sets the clock to this tick to have the current block cut.
        """
        with self._state_changed:
            if self._state_changed.wait_for(lambda: self._next_cut_ms > after_ms, timeout=timeout_s):
                return self._next_cut_ms
            return None

    def _run_timer(self) -> None:
        interval = self.block_interval_ms
        while not self._stop_timer.is_set():
            next_ms = (self._clock.time_ms() // interval + 1) * interval
            with self._state_changed:
                self._next_cut_ms = next_ms
                self._state_changed.notify_all()
            self._clock.wait_until(next_ms, self._stop_timer)
            with self._lock:
                self._cut_locked()
        with self._lock:  # final block after adding stopped
            self._cut_locked()
        self._timer_done.set()

    def _run_pusher(self) -> None:
        while True:
            try:
                pending = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self._timer_done.is_set() and self._queue.empty():
                    return
                continue
            self._push(pending)

    def _push(self, pending: PendingBlock) -> None:
        block_id = pending.block_id or ""
        try:
            self._push_block(block_id, pending.records)
        except Exception as exc:
            pending.finish(exc)
            self._on_error(f"error pushing block {block_id}", exc)
        else:
            pending.finish()
            with self._state_changed:
                self.records_pushed += len(pending.records)
                self._state_changed.notify_all()

    def wait_for_pushed(self, count: int, timeout_s: float) -> bool:
        """Wait until at least `count` records were pushed (stored and reported); False on timeout."""
        with self._state_changed:
            return self._state_changed.wait_for(lambda: self.records_pushed >= count, timeout=timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop accepting, flush the last block, push everything queued, then return."""
        with self._lock:
            if self._state != "active":
                self._state = "stopped"
                return
            self._state = "stopping"
        self._stop_timer.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._state = "stopped"

    @property
    def is_active(self) -> bool:
        return self._state == "active"
