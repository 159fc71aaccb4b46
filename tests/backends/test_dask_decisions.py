"""The Dask backend's pure decisions: which lost tasks to submit again, which storage URLs workers reach,
how its configuration keys are read, and which workers each task is submitted with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dstream.backends.dask.locality import submission_groups, task_workers
from dstream.backends.dask.reachability import refusal
from dstream.backends.dask.retries import Done, Lost, StageAttempts, TaskLostError
from dstream.config import DaskConfig, EngineConfig
from dstream.errors import DStreamValueError

# Each round, for each task still without an outcome: True = its worker died, False = it completed.
rounds = st.lists(st.lists(st.booleans(), min_size=5, max_size=5), min_size=1, max_size=8)


@given(tasks=st.integers(1, 5), retries_max=st.integers(0, 4), losses=rounds)
def test_every_task_gets_one_outcome_within_its_attempt_bound(
    tasks: int, retries_max: int, losses: list[list[bool]]
) -> None:
    attempts = StageAttempts([f"task {i}" for i in range(tasks)], retries_max)
    todo = attempts.to_submit()
    assert todo == list(range(tasks))
    outcomes: dict[int, int] = {}
    for round_losses in losses:
        for i in todo:
            lost = round_losses[i]
            attempts.record(i, Lost("KilledWorker: w") if lost else Done())
            if not lost:
                outcomes[i] = outcomes.get(i, 0) + 1
        try:
            todo = attempts.next_round()
        except TaskLostError as exc:
            gave_up = [i for i in range(tasks) if i not in outcomes and attempts.attempts(i) > retries_max]
            assert gave_up and f"task {gave_up[0]} " in str(exc) and "KilledWorker: w" in str(exc)
            return
        assert todo == [i for i in range(tasks) if i not in outcomes]
        assert all(attempts.attempts(i) <= retries_max + 1 for i in range(tasks))
        if not todo:
            break
    assert all(n == 1 for n in outcomes.values())  # an outcome is taken once
    assert attempts.finished == (len(outcomes) == tasks)


def test_a_late_second_outcome_is_refused() -> None:
    attempts = StageAttempts(["t"], 1)
    attempts.record(0, Done())
    with pytest.raises(ValueError, match="late attempt"):
        attempts.record(0, Done())


def test_the_final_error_names_the_task_and_the_bound() -> None:
    attempts = StageAttempts(["task 3 of stage 7 (collect)"], 1)
    for _ in range(2):
        attempts.record(0, Lost("KilledWorker: tcp://127.0.0.1:1"))
        if attempts.attempts(0) < 2:
            assert attempts.next_round() == [0]
    with pytest.raises(TaskLostError, match=r"task 3 of stage 7 \(collect\).*2 attempts.*taskRetriesMax=1"):
        attempts.next_round()


@pytest.mark.parametrize(
    ("url", "joins", "shared", "refused"),
    [
        ("memory://x/ckpt", False, False, "driver's memory"),
        ("memory://x/ckpt", True, True, "driver's memory"),
        ("/tmp/ckpt", False, False, None),
        ("file:///tmp/ckpt", True, False, "local disk"),
        ("/tmp/ckpt", True, False, "sharedFilesystem=true"),
        ("/tmp/ckpt", True, True, None),
        ("s3://bucket/ckpt", True, False, None),
    ],
)
def test_which_urls_the_workers_reach(url: str, joins: bool, shared: bool, refused: str | None) -> None:
    reason = refusal(url, "checkpoint directory", "dask://h:1", joins, shared)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason and url in reason


def test_dask_keys_are_parsed_once_with_clear_errors() -> None:
    assert EngineConfig.from_conf({}).dask == DaskConfig()
    config = EngineConfig.from_conf(
        {
            "dstream.dask.dashboard": "true",
            "dstream.dask.workerTimeout": "2s",
            "dstream.dask.taskRetriesMax": "7",
            "dstream.dask.sharedFilesystem": "yes",
            "dstream.dask.locality": "false",
        }
    ).dask
    assert config == DaskConfig(
        dashboard=True, worker_timeout_s=2.0, task_retries_max=7, shared_filesystem=True, locality=False
    )
    assert DaskConfig.from_conf({"dstream.dask.workerTimeout": "1500ms"}).worker_timeout_s == 1.5
    with pytest.raises(DStreamValueError, match=r"dstream.dask.workerTimeout.*'soon'"):
        DaskConfig.from_conf({"dstream.dask.workerTimeout": "soon"})
    with pytest.raises(DStreamValueError, match=r"dstream.dask.workerTimeout.*> 0"):
        DaskConfig.from_conf({"dstream.dask.workerTimeout": "0s"})
    with pytest.raises(DStreamValueError, match=r"dstream.dask.taskRetriesMax='-1'"):
        DaskConfig.from_conf({"dstream.dask.taskRetriesMax": "-1"})
    with pytest.raises(DStreamValueError, match=r"dstream.dask.locality.*'near'"):
        DaskConfig.from_conf({"dstream.dask.locality": "near"})


addresses = st.sampled_from(["driver", "tcp://a", "tcp://b", "tcp://c"])


@given(
    preferred=st.lists(st.lists(addresses, max_size=3), min_size=1, max_size=6),
    alive=st.sets(addresses),
    data=st.data(),
)
def test_each_task_is_submitted_once_with_its_live_preferred_workers(
    preferred: list[list[str]], alive: set[str], data: st.DataObject
) -> None:
    todo = data.draw(st.lists(st.integers(0, len(preferred) - 1), unique=True))
    groups = submission_groups(todo, preferred, alive)
    assert sorted(i for group in groups.values() for i in group) == sorted(todo)
    share = -(-len(todo) // max(1, len(alive)))
    for workers, group in groups.items():
        assert set(workers) <= alive and len(set(workers)) == len(workers)
        for i in group:
            live = task_workers(preferred[i], alive)
            assert live == tuple(dict.fromkeys(a for a in preferred[i] if a in alive))
            assert workers == tuple(w for w in live if w in workers)  # a subset, in preference order
        assert group == [i for i in todo if i in group]  # in todo's order
        if len(workers) == 1:  # a worker is the only choice of at most its fair share of the tasks
            assert len(group) <= share
    if len(alive) <= 1 or all(len(task_workers(p, alive)) == 0 for p in preferred):
        assert all(workers == task_workers(preferred[group[0]], alive) for workers, group in groups.items())


def test_tasks_beyond_a_workers_fair_share_go_anywhere() -> None:
    # Six block RDD tasks of one receiver on a two-worker cluster: three stay, three are free to move.
    groups = submission_groups(range(6), [("tcp://a",)] * 6, {"tcp://a", "tcp://b"})
    assert groups == {("tcp://a",): [0, 1, 2], (): [3, 4, 5]}
    # Replicated blocks: each task counts against the less loaded holder.
    both = submission_groups(range(4), [("tcp://a", "tcp://b")] * 4, {"tcp://a", "tcp://b"})
    assert both == {("tcp://a", "tcp://b"): [0, 1, 2], ("tcp://b",): [3]}
    # A dead preferred worker and the driver are never passed to Dask.
    assert submission_groups([0, 1], [("driver",), ("tcp://gone", "tcp://b")], {"tcp://b"}) == {
        (): [0],
        ("tcp://b",): [1],
    }
