"""A Hypothesis state machine: interleaved attempts, commits, aborts and crashes against a plain model.

The model: a dict batch -> records of the first attempt that committed. Attempts at one batch carry
different records (zombie attempts), so a second commit that slipped through would show.
"""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from dstream.sinks import TransactionalFileSink
from dstream.sinks.base import StagedPart, Transaction
from tests.support.raw_fs import raw_fs

BATCHES = [1000, 2000, 3000]


class FileSinkMachine(RuleBasedStateMachine):
    attempts = Bundle("attempts")

    def __init__(self) -> None:
        super().__init__()
        self.url = f"memory://dstream-sink-model/{uuid.uuid4().hex}"
        self.sink = TransactionalFileSink(self.url, output_id="m")
        self.model: dict[int, list[Any]] = {}
        self.counter = 0
        self.live: dict[str, tuple[Transaction, list[dict[str, Any]], list[StagedPart] | None]] = {}

    @rule(target=attempts, batch_ms=st.sampled_from(BATCHES), n=st.integers(0, 4))
    def begin(self, batch_ms: int, n: int) -> str:
        self.counter += 1
        txn = self.sink.begin(batch_ms)
        data = [{"attempt": self.counter, "i": i} for i in range(n)]
        self.live[txn.attempt] = (txn, data, None)
        return txn.attempt

    @rule(attempt=attempts)
    def stage(self, attempt: str) -> None:
        if attempt not in self.live or self.live[attempt][2] is not None:
            return
        txn, data, _ = self.live[attempt]
        staged = [self.sink.stage(txn, 0, data[:1]), self.sink.stage(txn, 1, data[1:])]
        self.live[attempt] = (txn, data, staged)

    @rule(attempt=attempts)
    def commit(self, attempt: str) -> None:
        if attempt not in self.live or self.live[attempt][2] is None:
            return
        txn, data, staged = self.live.pop(attempt)
        assert staged is not None
        outcome = self.sink.commit(txn, staged)
        if txn.batch_ms in self.model:
            assert outcome == "already-committed"
        else:
            assert outcome == "committed"
            self.model[txn.batch_ms] = data

    @rule(attempt=attempts)
    def abort(self, attempt: str) -> None:
        if attempt in self.live:
            txn, _, _ = self.live.pop(attempt)
            self.sink.abort(txn)

    @rule()
    def crash_and_recover(self) -> None:
        self.live.clear()  # in-flight attempts die with the process
        self.sink = TransactionalFileSink(self.url, output_id="m")
        self.sink.recover()
        fs, root = raw_fs(f"{self.url}/_staging")
        fs.invalidate_cache()
        staged = [p for p in fs.find(root) if "." in p]
        assert staged == []

    @invariant()
    def committed_view_matches_the_model(self) -> None:
        assert self.sink.read_committed() == self.model
        assert self.sink.committed_batches() == sorted(self.model)


FileSinkMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestFileSinkModel = FileSinkMachine.TestCase
