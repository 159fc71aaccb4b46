"""Which tasks of a stage to submit again after their worker died: a pure state machine.

Dask re-runs a task whose worker died by itself, but only `allowed-failures` times (3 by default) before
it fails the task with ``KilledWorker``; a scheduler we join (``dask://``) may be configured anything.
Losing a worker is normal here, so the backend submits such a task again itself, a bounded number of
times (``dstream.dask.taskRetriesMax``), and names the task in the final error. The decisions are
kept apart from the futures so that they can be tested exhaustively (tests/backends).

Outcomes of one attempt of one task: `Done` (a result or the task's own exception, both final) or
`Lost` (the infrastructure lost it: its worker died, it was cancelled by the scheduler). After a round
of attempts, `StageAttempts.next_round()` says which tasks to submit again, or raises
`TaskLostError` for the first task that has used up its attempts.
"""

from __future__ import annotations

from dataclasses import dataclass

from dstream.errors import DStreamError


class TaskLostError(DStreamError):
    """A task's worker died on every attempt the retry bound allows."""


@dataclass(frozen=True)
class Done:
    """The attempt produced the task's outcome (a value or the task's own error)."""


@dataclass(frozen=True)
class Lost:
    """The attempt was lost with its worker; `reason` says how (e.g. ``KilledWorker: ...``)."""

    reason: str


Outcome = Done | Lost


class StageAttempts:
    """Attempts of a stage's tasks; task i may be submitted at most ``retries_max + 1`` times.

    Args:
        names: each task's description, for the error that gives up on it.
        retries_max: submissions after the first, per task, at most.
    """

    def __init__(self, names: list[str], retries_max: int) -> None:
        if retries_max < 0:
            raise ValueError(f"retries_max must be >= 0, got {retries_max}")
        self._names = list(names)
        self._retries_max = retries_max
        self._attempts = [0] * len(names)
        self._done = [False] * len(names)
        self._last_loss: dict[int, str] = {}

    def to_submit(self) -> list[int]:
        """The tasks without an outcome yet, in order (submit these, then `record` their outcomes)."""
        return [i for i, done in enumerate(self._done) if not done]

    def record(self, index: int, outcome: Outcome) -> None:
        """Count one finished attempt of task `index` and its outcome."""
        if self._done[index]:
            raise ValueError(f"task {index} already has an outcome; a late attempt must be ignored")
        self._attempts[index] += 1
        if isinstance(outcome, Done):
            self._done[index] = True
        else:
            self._last_loss[index] = outcome.reason

    def attempts(self, index: int) -> int:
        return self._attempts[index]

    @property
    def finished(self) -> bool:
        return all(self._done)

    def next_round(self) -> list[int]:
        """The tasks to submit again; empty when every task has its outcome.

        Raises:
            TaskLostError: a task was lost on each of its ``retries_max + 1`` attempts.
        """
        again = self.to_submit()
        for i in again:
            if self._attempts[i] > self._retries_max:
                raise TaskLostError(
                    f"{self._names[i]} was lost with its worker on each of its {self._attempts[i]} attempts"
                    f" (dstream.dask.taskRetriesMax={self._retries_max}); last: {self._last_loss.get(i)}"
                )
        return again
