"""The restart plan: which batch times a recovered driver runs again, and when its timer resumes.

A pure function of the checkpoint (its time and pending batches), the graph's zero time, the batch
duration and the clock's current time, so that it can be tested exhaustively. It follows Spark's
JobGenerator.restart with one difference in the lower bound:

- the timer resumes at `restart_ms`, the first tick strictly after now on the original grid
  `zero + k * batch` (k >= 1), and never at or before the checkpoint time;
- re-run = pending batches (generated, not completed) and every grid time in
  (checkpoint_ms, restart_ms), in time order, without duplicates.

Spark also re-runs the checkpoint's own time; here a completion checkpoint of T lists T as done and a
generation checkpoint of T lists it as pending, so the checkpoint time re-runs exactly when needed.
`checkpoint_ms` must be the newest batch time the checkpoint knows was generated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dstream.errors import DStreamValueError


@dataclass(frozen=True)
class RestartPlan:
    """What a recovered JobGenerator does before its timer resumes."""

    restart_ms: int
    rerun_ms: tuple[int, ...]


def _check_ms(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise DStreamValueError(f"{what} must be an int (milliseconds), got {value!r}")
    return value


def restart_plan(
    checkpoint_ms: int, pending_ms: Iterable[int], zero_ms: int, batch_ms: int, now_ms: int
) -> RestartPlan:
    """Plan a restart (see the module docstring).

    Raises:
        DStreamValueError: batch_ms <= 0, or a time is not an int.
    """
    for value, what in ((checkpoint_ms, "checkpoint_ms"), (zero_ms, "zero_ms"), (now_ms, "now_ms")):
        _check_ms(value, what)
    if _check_ms(batch_ms, "batch_ms") <= 0:
        raise DStreamValueError(f"batch_ms must be > 0, got {batch_ms}")
    pending = {_check_ms(t, "pending batch time") for t in pending_ms}
    floor_ms = max(now_ms, checkpoint_ms, zero_ms)
    restart_ms = zero_ms + ((floor_ms - zero_ms) // batch_ms + 1) * batch_ms
    first_down = zero_ms + ((max(checkpoint_ms, zero_ms) - zero_ms) // batch_ms + 1) * batch_ms
    down = set(range(first_down, restart_ms, batch_ms))
    rerun = sorted(t for t in pending | down if t < restart_ms)
    return RestartPlan(restart_ms, tuple(rerun))
