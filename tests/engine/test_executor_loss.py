"""What the DAG scheduler records when executors leave and join (`executor_lost`, `executor_added`).

A state machine against a model: the map-output tracker and the block-location table never name an
executor the scheduler was told is gone, whether its outputs were recorded before the loss (forgotten
at once) or arrive after it from a stage that was still running (dropped); an executor that joins again
under the same id counts again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dstream.backends.base import ExecutionBackend, Task
from dstream.backends.executor_env import ExecutorEnv
from dstream.backends.local_blocks import LocalBlockManager
from dstream.rdd.dag_scheduler import DAGScheduler
from dstream.rdd.executor_loss import LostExecutors
from dstream.rdd.map_output_tracker import MapOutputTracker, MapStatus
from dstream.rdd.storage import BlockLocations

EXECUTORS = ["tcp://a", "tcp://b", "tcp://c"]
MAPS = 3  # one shuffle of three map tasks
RDD, SPLITS = 7, 3  # one persisted RDD of three partitions


class NoTasks(ExecutionBackend):
    """A backend that only holds a block manager: these decisions run no task."""

    def __init__(self) -> None:
        self._env = ExecutorEnv("driver", LocalBlockManager("driver"))

    @property
    def default_parallelism(self) -> int:
        return 1

    @property
    def executor_env(self) -> ExecutorEnv:
        return self._env

    def run_tasks(self, tasks: Sequence[Task]) -> list[Any]:
        raise AssertionError("no task runs here")

    def stop(self) -> None:
        self._env.close()


class ExecutorLossMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        backend = NoTasks()
        self.tracker = MapOutputTracker(backend.block_manager)
        self.blocks = BlockLocations(backend.block_manager)
        self.blocks.register(RDD)
        self.scheduler = DAGScheduler(backend, self.blocks, self.tracker)
        self.tracker.missing(0, MAPS)
        self.lost: set[str] = set()
        self.maps: list[str | None] = [None] * MAPS
        self.where: dict[int, tuple[str, ...]] = {}

    @rule(executor=st.sampled_from(EXECUTORS))
    def executor_lost(self, executor: str) -> None:
        self.scheduler.executor_lost(executor)
        self.lost.add(executor)
        self.maps = [None if m == executor else m for m in self.maps]
        for split, holders in list(self.where.items()):
            kept = tuple(h for h in holders if h != executor)
            if kept:
                self.where[split] = kept
            else:
                del self.where[split]

    @rule(executor=st.sampled_from(EXECUTORS))
    def executor_added(self, executor: str) -> None:
        self.scheduler.executor_added(executor)
        self.lost.discard(executor)

    @rule(m=st.integers(0, MAPS - 1), executor=st.sampled_from(EXECUTORS))
    def a_map_stage_returns(self, m: int, executor: str) -> None:
        self.scheduler.record_map_outputs(0, MAPS, {m: MapStatus(executor, (1, 1))})
        if executor not in self.lost:
            self.maps[m] = executor

    @rule(
        split=st.integers(0, SPLITS - 1),
        holders=st.lists(st.sampled_from(EXECUTORS), min_size=1, max_size=2, unique=True),
    )
    def a_stage_persists_a_partition(self, split: int, holders: list[str]) -> None:
        self.scheduler.record_new_blocks({(RDD, split): tuple(holders)})
        live = tuple(h for h in holders if h not in self.lost)
        if live:
            self.where[split] = live

    @invariant()
    def the_tables_match_the_model_and_name_no_lost_executor(self) -> None:
        assert self.tracker.missing(0, MAPS) == [m for m, e in enumerate(self.maps) if e is None]
        if all(self.maps):
            assert [ref.locations for ref in self.tracker.refs(0, 0)] == [(e,) for e in self.maps]
        assert {s: self.blocks.get(RDD, s) for s in self.blocks.splits(RDD)} == self.where
        named = {e for e in self.maps if e} | {h for hs in self.where.values() for h in hs}
        assert not named & self.lost


TestExecutorLoss = ExecutorLossMachine.TestCase
TestExecutorLoss.settings = settings(stateful_step_count=20)  # a loss takes a few steps to matter


def test_lost_executors_are_remembered_up_to_a_bound() -> None:
    lost = LostExecutors(remembered_max=2)
    for e in ["a", "b", "c"]:
        lost.lost(e)
    assert not lost.is_lost("a") and lost.is_lost("b") and lost.is_lost("c")
    lost.lost("b")  # lost again: now the most recent
    lost.lost("d")
    assert lost.live(["a", "b", "c", "d"]) == ("a", "c")
    with pytest.raises(ValueError, match="remembered_max must be >= 1, got 0"):
        LostExecutors(0)
