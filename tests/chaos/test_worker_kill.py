"""Worker faults in a chaos run on `local-cluster[2]` (default run, about a minute): a stateful pipeline
whose Dask worker is SIGKILLed mid-run (the nanny restarts it), checked exactly by the checker.

The worker kill is the only fault, so the batches must resume on their own: the checker's liveness
rule (a completed batch within the recovery bound after the fault, then the drain) fails otherwise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.nemesis.schedule import Step
from chaos.runner import RunConfig, run_chaos
from chaos.workload import WorkloadSpec

pytestmark = pytest.mark.chaos

SCHEDULE = (Step("worker-kill", 0.5, {"worker": 1}),)


def test_stateful_pipeline_on_local_cluster_resumes_exactly_once_after_a_worker_kill(
    tmp_path: Path,
) -> None:
    config = RunConfig(
        pipeline="stateful", sink="transactional", master="local-cluster[2]", seed=8, schedule=SCHEDULE,
        workload=WorkloadSpec(producers_n=2, keys_per_producer=3, pause_s=0.05), warmup_s=0.5,
        drain_timeout_s=60.0, time_limit_s=170.0,
    )  # fmt: skip
    result = run_chaos(config, tmp_path / "run")
    verdict = result.verdict
    assert verdict["valid"], verdict
    assert verdict["records"]["acknowledged"] > 0
    faults = verdict["run"]["faults"]
    assert [f["fault"] for f in faults] == ["worker-kill"], faults
    (recovery,) = verdict["recovery_s"]["per_fault"]
    assert recovery["recovered_s"] is not None, recovery
    kill = faults[0]
    assert kill["killed"] and kill["worker_replaced"], kill
    assert kill["worker_pid"] > 0 and kill["address"].startswith("tcp://127.0.0.1:"), kill
    assert verdict["run"]["not_applicable"] == []
