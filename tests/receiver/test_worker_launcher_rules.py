"""The driver's rules for receivers on workers (dstream.receiver.worker_launcher), without a cluster:
a superseded launch may neither report blocks nor take budget, and budget a launch took without
reporting is given back when it ends (a worker that died between the two leaks nothing)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from dstream.clock import ManualClock
from dstream.errors import DStreamStateError
from dstream.receiver.received_block_tracker import ReceivedBlockInfo
from dstream.receiver.receiver_tracker import ReceiverTracker
from dstream.receiver.worker_launcher import RUN_TIMEOUT_S, RemoteSupervisor, WorkerLauncher
from tests.receiver.helpers import HandFedReceiver

WORKER = "tcp://127.0.0.1:4000"


def _launcher() -> tuple[WorkerLauncher, ReceiverTracker]:
    tracker = ReceiverTracker(ManualClock(0))
    tracker.add_receiver(0, HandFedReceiver())
    launcher = WorkerLauncher(
        SimpleNamespace(client=None, executor_plugin_name="p", wait_for_workers=None), None, {}
    )  # type: ignore[arg-type]
    launcher._tracker = tracker  # bound without an endpoint: requests are dispatched by hand here
    return launcher, tracker


def _placed(launcher: WorkerLauncher, tracker: ReceiverTracker) -> RemoteSupervisor:
    handle = launcher.launch(0, tracker._receivers[0])
    handle.worker, handle.worker_pid = WORKER, 1
    return handle


def _info(block_id: str, records: int = 3) -> ReceivedBlockInfo:
    return ReceivedBlockInfo(0, block_id, records, None, None, True, None, (WORKER,))


def _ask(launcher: WorkerLauncher, handle: RemoteSupervisor, action: str, **fields: object) -> object:
    return launcher._dispatch(action, {"stream_id": 0, "launch_id": handle.launch_id, **fields})


def test_a_current_launch_reports_and_a_superseded_one_is_refused() -> None:
    launcher, tracker = _launcher()
    old = _placed(launcher, tracker)
    assert _ask(launcher, old, "budget", op="acquire", block_id="b1", records=3, wait_s=0.0) is True
    _ask(launcher, old, "report", info=_info("b1"))
    assert tracker.block_tracker.known_block_ids() == {"b1"}
    new = _placed(launcher, tracker)  # the old worker was declared dead; the receiver moved
    with pytest.raises(DStreamStateError, match="superseded"):
        _ask(launcher, old, "report", info=_info("b2"))
    with pytest.raises(DStreamStateError, match="superseded"):
        _ask(launcher, old, "budget", op="acquire", block_id="b2", records=3, wait_s=0.0)
    _ask(launcher, new, "report", info=_info("b3"))
    assert tracker.block_tracker.known_block_ids() == {"b1", "b3"}


def test_budget_taken_and_never_reported_is_given_back_when_the_launch_ends() -> None:
    launcher, tracker = _launcher()
    handle = _placed(launcher, tracker)
    budget = tracker.budget(0)
    for block_id in ("b1", "b2"):
        assert _ask(launcher, handle, "budget", op="acquire", block_id=block_id, records=5, wait_s=0.0)
    _ask(launcher, handle, "report", info=_info("b1", 5))
    assert budget.outstanding_records == 10
    handle.terminated("worker lost", None, True)  # b2 was stored on the dead worker, never reported
    assert budget.outstanding_records == 5  # b1 waits for its allocation, b2's records came back
    tracker.allocate_blocks_to_batch(1000)
    assert budget.outstanding_records == 0


def test_a_full_budget_answers_not_yet_within_the_wait() -> None:
    launcher, tracker = _launcher()
    handle = _placed(launcher, tracker)
    records_max = tracker.budget(0).records_max
    assert records_max is not None
    assert _ask(launcher, handle, "budget", op="acquire", block_id="b1", records=records_max, wait_s=0.0)
    assert _ask(launcher, handle, "budget", op="acquire", block_id="b2", records=1, wait_s=0.05) is False
    assert _ask(launcher, handle, "budget", op="force", block_id="b2", records=1, wait_s=0.0) is True


def _launcher_answering(answer: Any, raises: bool = False) -> tuple[WorkerLauncher, list[dict[str, Any]]]:
    """A launcher whose backend answers every `run_on_workers` call with `answer`, or raises it
    (`raises`); the calls are recorded."""
    calls: list[dict[str, Any]] = []

    def run_on_workers(func: Any, *args: Any, workers: list[str] | None, timeout_s: float) -> Any:
        calls.append({"func": func, "args": args, "workers": workers, "timeout_s": timeout_s})
        if raises:
            raise answer
        return answer

    backend = SimpleNamespace(
        client=None, executor_plugin_name="p", wait_for_workers=None, run_on_workers=run_on_workers
    )
    return WorkerLauncher(backend, None, {}), calls  # type: ignore[arg-type]


def test_calls_to_a_worker_go_through_the_membership_view_and_a_gone_worker_answers_none() -> None:
    """A SIGKILLed worker must not be waited for (Dask's 30 s connect timeout held up the cleanup that
    writes the receivers' snapshots, and a graceful stop behind it): `run_on` asks the backend's
    membership-aware call, which leaves out workers that left; no answer from the worker is None."""
    launcher, calls = _launcher_answering({})  # the worker left the view: no answer from it
    assert launcher.run_on(WORKER, len, "xs") is None
    assert calls == [{"func": len, "args": ("p", "xs"), "workers": [WORKER], "timeout_s": RUN_TIMEOUT_S}]
    launcher, _ = _launcher_answering({WORKER: 7})
    assert launcher.run_on(WORKER, len, "xs") == 7
    launcher, _ = _launcher_answering({WORKER: ValueError("failed on the worker")})
    assert launcher.run_on(WORKER, len, "xs") is None  # the worker's own error: logged, None
    launcher, _ = _launcher_answering(OSError("the scheduler is gone"), raises=True)
    assert launcher.run_on(WORKER, len, "xs") is None
