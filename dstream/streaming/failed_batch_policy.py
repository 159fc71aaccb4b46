"""What to do with a batch whose job failed: the pure decision behind `dstream.streaming.failedBatchPolicy`.

A batch that fails deterministically would stay pending forever (a pending batch is re-run by a
recovered driver, so the WALs keep everything from it on: cleanup is pinned). The policy bounds that:

- `fail-stop`: the batch stays pending and its error ends the application (awaitTermination), as in
  Spark. Nothing is retried here.
- `quarantine`: the failed jobs run again, in order on the scheduler's thread, until
  `attempts_max` attempts in all; then the batch is quarantined (its input copied to the dead-letter
  area, see checkpoint/quarantine.py), reported, and no longer pending.

The JobScheduler is the thin shell that runs the jobs and acts on the decision.
"""

from __future__ import annotations

from enum import Enum

from dstream.config import FAIL_STOP, FAILED_BATCH_POLICIES, QUARANTINE
from dstream.errors import DStreamValueError


class FailedBatchAction(Enum):
    """What the scheduler does after an attempt of a batch."""

    DONE = "done"  # every job succeeded
    RETRY = "retry"  # run the failed jobs again
    QUARANTINE = "quarantine"  # give up: quarantine the input, stop pending, report
    KEEP_PENDING = "keep-pending"  # fail-stop: report, the batch stays pending


def decide(policy: str, failed: bool, attempts_done: int, attempts_max: int) -> FailedBatchAction:
    """The action after `attempts_done` attempts of a batch (the last of which `failed` or not).

    Raises:
        DStreamValueError: an unknown policy, or counts that are not positive.
    """
    if policy not in FAILED_BATCH_POLICIES:
        raise DStreamValueError(f"failed-batch policy {policy!r}: expected one of {FAILED_BATCH_POLICIES}")
    if attempts_done < 1 or attempts_max < 1:
        raise DStreamValueError(
            f"attempts_done={attempts_done}, attempts_max={attempts_max}: expected both >= 1"
        )
    if not failed:
        return FailedBatchAction.DONE
    if policy == FAIL_STOP:
        return FailedBatchAction.KEEP_PENDING
    assert policy == QUARANTINE
    return FailedBatchAction.RETRY if attempts_done < attempts_max else FailedBatchAction.QUARANTINE
