"""The map-output tracker as a state machine: what it says is missing is exactly what was never
registered or was forgotten, and the references it hands out name the holders it was told about."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dstream.backends.block_manager import ShuffleBlockId
from dstream.backends.local_blocks import LocalBlockManager
from dstream.errors import DStreamError
from dstream.rdd.map_output_tracker import MapOutputTracker, MapStatus

SHUFFLES = {0: 3, 1: 1, 2: 0}  # shuffle id -> map tasks (a shuffle of none is complete at once)
EXECUTORS = ["a", "b", "c"]


class TrackerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tracker = MapOutputTracker(LocalBlockManager("driver"))
        self.model: dict[int, list[str | None]] = {}

    def _known(self, sid: int) -> list[str | None]:
        return self.model.setdefault(sid, [None] * SHUFFLES[sid])

    @rule(sid=st.sampled_from(sorted(SHUFFLES)), data=st.data())
    def register(self, sid: int, data: st.DataObject) -> None:
        n = SHUFFLES[sid]
        if n == 0:
            return
        m = data.draw(st.integers(0, n - 1))
        where = data.draw(st.sampled_from(EXECUTORS))
        self.tracker.missing(sid, n)
        self.tracker.register(sid, n, m, MapStatus(where, (1, 2)))
        self._known(sid)[m] = where

    @rule(sid=st.sampled_from(sorted(SHUFFLES)), m=st.integers(0, 2))
    def forget(self, sid: int, m: int) -> None:
        self.tracker.forget(sid, m)
        if sid in self.model and m < len(self.model[sid]):
            self.model[sid][m] = None

    @rule(executor=st.sampled_from(EXECUTORS))
    def executor_lost(self, executor: str) -> None:
        self.tracker.executor_lost(executor)
        for statuses in self.model.values():
            statuses[:] = [None if s == executor else s for s in statuses]

    @rule(sid=st.sampled_from(sorted(SHUFFLES)))
    def remove(self, sid: int) -> None:
        self.tracker.remove(sid)
        self.model.pop(sid, None)

    @invariant()
    def missing_and_refs_agree_with_the_model(self) -> None:
        for sid, n in SHUFFLES.items():
            if sid not in self.model:
                continue
            statuses = self.model[sid]
            assert self.tracker.missing(sid, n) == [m for m, s in enumerate(statuses) if s is None]
            assert self.tracker.is_complete(sid) == all(s is not None for s in statuses)
            for r in range(2):
                if all(s is not None for s in statuses):
                    refs = self.tracker.refs(sid, r)
                    assert [(ref.block_id, ref.locations) for ref in refs] == [
                        (ShuffleBlockId(sid, m, r), (s,)) for m, s in enumerate(statuses)
                    ]
                else:
                    with pytest.raises(DStreamError, match="missing map outputs"):
                        self.tracker.refs(sid, r)
        assert self.tracker.shuffle_ids() == set(self.model)


TestMapOutputTracker = TrackerMachine.TestCase
