"""The transactional sink contract: two-phase commit adapted to micro-batches.

Flink's two-phase-commit sinks pre-commit at a checkpoint barrier and commit when the checkpoint
completes. A micro-batch engine has a simpler barrier: the batch. Each output batch of a
`TransactionalSink` goes through:

    1. `is_committed(batch_ms)`   driver: a batch already in the sink's commit log is skipped
    2. `begin(batch_ms)`          driver: a fresh `Transaction` (batch time + random attempt id)
    3. `stage(txn, i, records)`   tasks (workers): write partition i's records somewhere private to
                                  the attempt; return a small picklable `StagedPart`
    4. `commit(txn, staged)`      driver, once: make the staged data visible and record
                                  (output_id, batch_ms) in the commit log, as one atomic step
    5. `abort(txn)`               driver, when staging failed: delete the attempt's staged data

`recover()` runs once per process before the first batch: it finishes commits that were recorded but
not yet fully applied and deletes staging left by attempts that never committed. Staged data lives in
storage the sink controls (files, a staging table), never in an external transaction with a timeout
(Flink's FLIP-319 lesson).

A re-run batch (after a driver restart) recomputes identical records; it is skipped at step 1, or, if
a concurrent attempt wins the race, its `commit` returns "already-committed" and discards its own
staging. Either way the batch's data becomes visible exactly once.

Crash points: a `commit` implementation hits `sink.after_stage_before_commit` before its commit point
and, if it has a step after the commit point, `sink.after_commit_before_publish` after it.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

CommitOutcome = Literal["committed", "already-committed"]


@dataclass(frozen=True)
class Transaction:
    """One attempt at writing one batch of one output."""

    output_id: str
    batch_ms: int
    attempt: str

    @staticmethod
    def new(output_id: str, batch_ms: int) -> Transaction:
        return Transaction(output_id, batch_ms, uuid.uuid4().hex)


@dataclass(frozen=True)
class StagedPart:
    """What a task reports after staging one partition: where it went and how many records."""

    partition_index: int
    name: str | None
    records_n: int


class TransactionalSink(ABC):
    """Base class of exactly-once sinks; see the module docstring for the protocol.

    Subclasses set `output_id`: a stable id (1-200 characters of [A-Za-z0-9_.-]) that keys the
    commit log, so it must not change between runs of the same pipeline.
    """

    output_id: str

    def __getstate__(self) -> dict[str, Any]:
        # Sinks travel to tasks and into metadata checkpoints; per-process state does not.
        state = self.__dict__.copy()
        for transient in self._transient_attrs():
            state.pop(transient, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _transient_attrs(self) -> tuple[str, ...]:
        """Attributes that are per-process (recovery done, open handles) and never pickled."""
        return ("_recovered",)

    def bind_commit_dir(self, dir_url: str, storage_options: Mapping[str, Any] | None = None) -> None:  # noqa: B027
        """Offer the checkpoint directory as the commit log's home (the runner calls this).

        Sinks that keep their commits elsewhere (in their own database) ignore it.
        """

    def recover(self) -> None:  # noqa: B027
        """Roll recorded commits forward and delete stale staging (once per process, before batches)."""

    @abstractmethod
    def is_committed(self, batch_ms: int) -> bool:
        """Whether batch `batch_ms` of this output is in the commit log."""

    def begin(self, batch_ms: int) -> Transaction:
        """A new attempt at `batch_ms`."""
        return Transaction.new(self.output_id, batch_ms)

    @abstractmethod
    def stage(self, txn: Transaction, partition_index: int, records: Iterable[Any]) -> StagedPart:
        """Write one partition's records privately to the attempt (runs in a task)."""

    @abstractmethod
    def commit(self, txn: Transaction, staged: list[StagedPart]) -> CommitOutcome:
        """Make the attempt's staged data visible and record the commit, atomically (driver)."""

    @abstractmethod
    def abort(self, txn: Transaction) -> None:
        """Delete the attempt's staged data (driver; safe to call more than once)."""
