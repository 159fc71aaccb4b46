"""The receiver-worker-kill fault in a chaos run on `local-cluster[2]`: the Dask worker process hosting
the stateless pipeline's push receiver is SIGKILLed mid-run; the tracker starts the receiver again on
an alive worker (the receiver WAL's blocks adopted), the producers follow it through the drivers'
"receivers" reports, and the checker finds every acknowledged record committed exactly once.

The kill is the only fault, so the batches must resume on their own: the checker's liveness rule (a
completed batch within the recovery bound after the fault, then the drain) fails otherwise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.history import read_history
from chaos.nemesis.schedule import Step
from chaos.runner import RunConfig, run_chaos
from chaos.workload import WorkloadSpec

pytestmark = pytest.mark.chaos

SCHEDULE = (Step("receiver-worker-kill", 0.5, {"receiver": 0}),)


def test_stateless_pipeline_stays_exact_when_its_receivers_worker_is_killed(tmp_path: Path) -> None:
    config = RunConfig(
        pipeline="stateless", sink="transactional", master="local-cluster[2]", seed=15, schedule=SCHEDULE,
        workload=WorkloadSpec(producers_n=2, keys_per_producer=3, pause_s=0.05), warmup_s=0.5,
        drain_timeout_s=60.0, time_limit_s=170.0,
    )  # fmt: skip
    result = run_chaos(config, tmp_path / "run")
    verdict = result.verdict
    assert verdict["valid"], verdict
    assert verdict["records"]["acknowledged"] > 0
    faults = verdict["run"]["faults"]
    assert [f["fault"] for f in faults] == ["receiver-worker-kill"], faults
    kill = faults[0]
    assert kill["killed"] and kill["receiver_restarted"], kill
    assert kill["worker_pid"] > 0 and kill["address"].startswith("tcp://127.0.0.1:"), kill
    assert kill["moved_to"].startswith("tcp://127.0.0.1:"), kill
    (recovery,) = verdict["recovery_s"]["per_fault"]
    assert recovery["recovered_s"] is not None, recovery
    assert verdict["run"]["not_applicable"] == []
    events = read_history(result.history_path).events
    (end,) = [e["t"] for e in events if e["f"] == "fault-end"]
    acked_after = [e for e in events if e["f"] == "send" and e["type"] == "ok" and e["t"] > end]
    assert acked_after, "no producer was acknowledged by the moved receiver"


@pytest.mark.slow
def test_join_pipeline_stays_exact_when_the_seed_picks_its_second_receivers_worker(
    tmp_path: Path,
) -> None:
    """The join has two receivers, one per worker of `local-cluster[2]`; the step's receiver 1 is the
    second by stream id. Then a driver kill: the replacement places both receivers again."""
    schedule = (
        Step("receiver-worker-kill", 0.5, {"receiver": 1}),
        Step("driver-kill", 0.5, {"when": "random", "delay_s": 0.2, "burst": 1}),
        Step("receiver-worker-kill", 0.5, {"receiver": 2}),
    )
    config = RunConfig(
        pipeline="join", sink="transactional", master="local-cluster[2]", seed=16, schedule=schedule,
        workload=WorkloadSpec(producers_n=2, keys_per_producer=3, pause_s=0.05), warmup_s=0.5,
        drain_timeout_s=60.0, time_limit_s=240.0,
    )  # fmt: skip
    result = run_chaos(config, tmp_path / "run")
    verdict = result.verdict
    assert verdict["valid"], verdict
    faults = verdict["run"]["faults"]
    assert [f["fault"] for f in faults] == ["receiver-worker-kill", "driver-kill", "receiver-worker-kill"]
    first, _, second = faults
    for kill in (first, second):
        assert kill["killed"] and kill["receiver_restarted"], kill
    assert first["stream"] != second["stream"], faults  # receiver 1, then receiver 2 % 2 == 0
    assert all(f["recovered_s"] is not None for f in verdict["recovery_s"]["per_fault"])
