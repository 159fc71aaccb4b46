"""`FaultInjector`: asks the plan about each call and acts out the faults that need no help from it.

Shared by the two wrappers, `faulty.FaultyStorage` (the engine's storage seam) and
`fsspec_fs.FaultyFileSystem` (code that goes through fsspec directly). For one call it consults the
pure plan under a lock (so concurrent callers keep consistent counts), tells the listener, and then:
sleeps for latency; raises OSError for an error (EIO), a SlowDown (EBUSY, S3's 503 text as s3fs
raises it) or ENOSPC (except on the writes that first leave a prefix); ends the process for a
crash or power cut (through the wrapper's `die`). Torn writes, partial ENOSPC writes and lost
fsyncs are returned to the wrapper, which acts them out and ends them with `failure_after_prefix`.
"""

from __future__ import annotations

import errno
import threading
from collections import Counter
from collections.abc import Callable

from chaos.storage_faults.plan import Fault, PlanState, StorageFaultPlan, decide

FaultListener = Callable[[Fault, str, str], None]
"""Told (fault, operation, path) before a fault takes effect."""

SLOWDOWN_MESSAGE = "SlowDown: Please reduce your request rate. (503)"
PARTIAL_WRITE_OPS = frozenset({"append", "create_once"})
"""Operations whose ENOSPC writes a prefix first, as a disk that fills up mid-write does."""


def injected_error(code: int, text: str, fault: Fault, op: str, path: str) -> OSError:
    return OSError(code, f"{text} (injected: storage fault rule {fault.rule}, {op} {path!r})")


class FaultInjector:
    """The plan's decisions for one wrapper, with its counts.

    Args:
        plan: the seeded plan.
        sleep: what a latency fault calls with the delay in seconds.
        die: ends the process, told "crash" or "power_cut" (it must not return in a real run).
        on_fault: told about each fault before it takes effect.
    """

    def __init__(
        self,
        plan: StorageFaultPlan,
        *,
        sleep: Callable[[float], None],
        die: Callable[[str], None],
        on_fault: FaultListener | None = None,
    ) -> None:
        self.plan = plan
        self.injected: Counter[str] = Counter()
        self._sleep = sleep
        self._die = die
        self._on_fault = on_fault
        self._state = PlanState.start(plan)
        self._lock = threading.Lock()

    def check(self, op: str, path: str) -> Fault | None:
        """Decide the call's fault and act it out, or return it for the wrapper to act out."""
        with self._lock:
            fault, self._state = decide(self.plan, self._state, op, path)
            if fault is None:
                return None
            self.injected[fault.kind] += 1
        if self._on_fault is not None:
            self._on_fault(fault, op, path)
        if fault.kind == "latency":
            self._sleep(fault.latency_s)
            return None
        if fault.kind == "error":
            raise injected_error(errno.EIO, "Input/output error", fault, op, path)
        if fault.kind == "slowdown":
            raise injected_error(errno.EBUSY, SLOWDOWN_MESSAGE, fault, op, path)
        if fault.kind == "enospc" and op not in PARTIAL_WRITE_OPS:
            raise injected_error(errno.ENOSPC, "No space left on device", fault, op, path)
        if fault.kind in ("crash", "power_cut"):
            self._die(fault.kind)
        return fault  # torn, a partial ENOSPC, lost fsync: the wrapper acts it out

    def failure_after_prefix(self, fault: Fault, op: str, path: str) -> OSError:
        """The error that ends a torn or ENOSPC write (or the death, for a torn write that dies)."""
        if fault.kind == "torn" and fault.then != "error":
            self._die(fault.then)
        if fault.kind == "enospc":
            return injected_error(errno.ENOSPC, "No space left on device", fault, op, path)
        return injected_error(errno.EIO, "Input/output error (torn write)", fault, op, path)
