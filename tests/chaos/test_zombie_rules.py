"""The zombie rules of the checker: a driver paused past its lease commits nothing after it wakes and
stops on its own. Clean simulated runs pass; planted zombie commits and a zombie that kept running are
caught with the right examples."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.checker import ERROR_TYPES, CommittedOutput, check
from chaos.checker.model import Writer
from chaos.checker.zombies import check_zombies
from tests.chaos.simulated import SimRun, simulate

ZOMBIE_PID = 100  # the simulated nemesis names pid 100 in every fault-start
SUCCESSOR_PID = 200


def zombie_run(rng: random.Random, start_s: float, pause_s: float) -> SimRun:
    return simulate(rng, "stateless", faults=[("zombie-pause", start_s, pause_s)], p_fail=0, p_info=0)


def with_writers(
    run: SimRun,
    start_s: float,
    planted: frozenset[int] = frozenset(),
    committed: CommittedOutput | None = None,
) -> CommittedOutput:
    """Each batch written by the zombie before the pause and by its successor after it (its commit at
    the batch's time plus 50 ms), except `planted` batches, which the zombie commits after it woke."""
    out = committed or run.committed()
    batches = {}
    for batch_ms, batch in out.batches.items():
        t = batch_ms / 1000 + 0.05
        pid = ZOMBIE_PID if t < start_s or batch_ms in planted else SUCCESSOR_PID
        if batch_ms in planted:
            t = max(t, start_s + 0.001)
        batches[batch_ms] = dataclasses.replace(batch, writer=Writer(pid, round(t, 6)))
    return dataclasses.replace(out, batches=batches)


def errors(out: dict[str, Any]) -> list[str]:
    return [e for e in ERROR_TYPES if e in out["error_types"]]


@settings(max_examples=60)
@given(seed=st.integers(0, 2**16), start_s=st.floats(0.2, 2.0), pause_s=st.floats(0.5, 3.0))
def test_a_zombie_that_committed_only_before_its_pause_passes(
    seed: int, start_s: float, pause_s: float
) -> None:
    run = zombie_run(random.Random(seed), start_s, pause_s)
    out = check(run.events, run.header, with_writers(run, start_s))
    assert out["valid"], out
    assert out["zombie_publish"] == {"count": 0, "examples": []}


@settings(max_examples=60)
@given(seed=st.integers(0, 2**16), start_s=st.floats(0.2, 2.0), data=st.data())
def test_every_commit_by_the_zombie_after_its_pause_is_caught(
    seed: int, start_s: float, data: st.DataObject
) -> None:
    run = zombie_run(random.Random(seed), start_s, 1.0)
    after = sorted(b for b in run.assignment if b / 1000 + 0.05 >= start_s)
    planted = frozenset(data.draw(st.lists(st.sampled_from(after), min_size=1, unique=True)))
    out = check(run.events, run.header, with_writers(run, start_s, planted))
    assert errors(out) == ["zombie_publish"]
    assert out["zombie_publish"]["count"] == len(planted)
    examples = out["zombie_publish"]["examples"]
    assert {e["batch"] for e in examples} <= planted and len(examples) == min(8, len(planted))
    assert all(e["writer_pid"] == ZOMBIE_PID and e["t"] >= e["fault_at_s"] == start_s for e in examples)


def test_batches_without_a_writer_are_not_judged() -> None:
    run = zombie_run(random.Random(5), 0.5, 1.0)
    assert check_zombies(run.events, run.committed()).publish.count == 0


def test_a_commit_by_another_pid_after_the_pause_is_not_a_zombie_publish() -> None:
    run = zombie_run(random.Random(6), 1.2, 1.0)
    committed = with_writers(run, 1.2)
    assert {b.writer.pid for b in committed.batches.values() if b.writer} == {ZOMBIE_PID, SUCCESSOR_PID}
    assert check_zombies(run.events, committed).publish.count == 0


def test_a_zombie_that_did_not_stop_on_its_own_is_caught() -> None:
    run = zombie_run(random.Random(7), 0.5, 1.0)
    end = next(e for e in run.events if e["f"] == "fault-end")
    end["detail"] = {"zombie_pid": ZOMBIE_PID, "successor_pid": SUCCESSOR_PID, "zombie_stopped": False}
    out = check(run.events, run.header, with_writers(run, 0.5))
    assert errors(out) == ["zombie_not_stopped"]
    assert out["zombie_not_stopped"]["examples"] == [{"zombie_pid": ZOMBIE_PID, "fault_at_s": end["t"]}]
    end["detail"]["zombie_stopped"] = True
    assert check(run.events, run.header, with_writers(run, 0.5))["valid"]
