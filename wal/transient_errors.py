"""Which storage errors are transient, and a bounded retry with back-off for idempotent reads.

A restarted driver reads many objects before it can run (the newest metadata checkpoint, the
tracker's WAL, the checkpoint directory's listing); without retries its chance of starting falls with
their number under even a small error rate. Reads are idempotent, so a transient error is retried a
few times with a doubling delay, as the metadata checkpoint writer retries a publish.

Transient: an `OSError` that is none of `FileNotFoundError`, `PermissionError`, `FileExistsError`,
`IsADirectoryError`, `NotADirectoryError` (those say something true about the path, and retrying
cannot change it). So EIO, EBUSY (an object store's SlowDown), ENOSPC, `TimeoutError` and
`ConnectionError` are transient. Anything that is not an `OSError` (a corrupt record, a bad signature,
a `WALError`) is not.

It lives in the leaf package so that `checkpoint` and `dstream` share one definition.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

READ_ATTEMPTS_MAX = 3  # as many as the metadata writer's publish attempts
READ_RETRY_DELAY_S = 0.5  # the writer's delay between attempts; doubled after each failure here

_PERMANENT: tuple[type[OSError], ...] = (
    FileNotFoundError,
    PermissionError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is a storage error that a retry of the same read may not meet (module docstring)."""
    return isinstance(exc, OSError) and not isinstance(exc, _PERMANENT)


class TransientRetries:
    """The retry budget of one resumable read: at most `read_attempts_max` attempts in a row fail.

    For a read that cannot be wrapped in one call (a lazy iterator): call `failed(exc)` in its
    `except OSError`, which raises unless the error is transient and the budget allows another attempt
    (then it waits the back-off), and `progressed()` whenever an attempt got further than the last.

    Args:
        what: what is read, for the log line of each retry.
        read_attempts_max: attempts (>= 1) that may fail in a row before the error propagates.
        delay_s: the wait after the first failure, doubled after each further one in a row.
        wait: how to wait (tests); a thread event's wait by default.

    Raises:
        ValueError: read_attempts_max < 1.
    """

    def __init__(
        self,
        what: str,
        *,
        read_attempts_max: int = READ_ATTEMPTS_MAX,
        delay_s: float = READ_RETRY_DELAY_S,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        if (
            not isinstance(read_attempts_max, int)
            or isinstance(read_attempts_max, bool)
            or read_attempts_max < 1
        ):
            raise ValueError(f"read_attempts_max must be an int >= 1, got {read_attempts_max!r}")
        self._what = what
        self._attempts_max = read_attempts_max
        self._delay_s = delay_s
        self._wait = wait if wait is not None else threading.Event().wait
        self._failed_in_row = 0

    def progressed(self) -> None:
        """The current attempt got further than the last one: a new run of attempts starts."""
        self._failed_in_row = 0

    def failed(self, exc: OSError) -> None:
        """Re-raise `exc` unless it is transient and another attempt is allowed; else wait the back-off."""
        if not is_transient(exc):
            raise exc
        self._failed_in_row += 1
        if self._failed_in_row >= self._attempts_max:
            raise exc
        delay = self._delay_s * 2 ** (self._failed_in_row - 1)
        log.warning("reading %s failed (%s); retrying in %.1f s", self._what, exc, delay)
        self._wait(delay)


def retry_transient(
    read: Callable[[], T],
    what: str,
    *,
    read_attempts_max: int = READ_ATTEMPTS_MAX,
    delay_s: float = READ_RETRY_DELAY_S,
    wait: Callable[[float], object] | None = None,
) -> T:
    """`read()`, called again after each transient error, until `read_attempts_max` attempts failed.

    Args:
        read: the idempotent read.
        what, read_attempts_max, delay_s, wait: as for `TransientRetries`.

    Raises:
        ValueError: read_attempts_max < 1.
        OSError: the last transient error once the attempts are spent; any other error at once.
    """
    retries = TransientRetries(what, read_attempts_max=read_attempts_max, delay_s=delay_s, wait=wait)
    for _ in range(read_attempts_max - 1):
        try:
            return read()
        except OSError as exc:
            retries.failed(exc)
    return read()  # the last attempt: its error propagates
