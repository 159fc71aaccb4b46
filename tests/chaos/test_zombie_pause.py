"""The zombie-pause fault on an object-store checkpoint (moto's S3 server in this process, 127.0.0.1):
the driver is SIGSTOPped past its lease, a successor takes the lease over and completes batches, the
zombie is woken with SIGCONT and must publish nothing (no commit, no acknowledgement the successor
would not see) and stop on its own. Before the engine's fence (`DriverLease.ensure_held`, checked
around every block record and before every sink commit and quarantine), the woken zombie acknowledged
records that no driver ever committed and committed batches the successor had not reached: with the
fence taken out this run fails with lost, duplicated, key_repeats, aggregate_mismatch and
zombie_publish. The stateful run is marked slow (13 s idle, about a minute on a loaded machine); a stateless
smoke with 1 s batches and a 1 s lease is in the default run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chaos.committed_output import read_committed_output
from chaos.history import read_history
from chaos.nemesis.schedule import Step
from chaos.runner import RunConfig, run_chaos
from chaos.workload import WorkloadSpec
from tests.support.s3servers import StorageTarget

pytestmark = pytest.mark.chaos

WORKLOAD = WorkloadSpec(producers_n=3, keys_per_producer=3, pause_s=0.05)
# A short lease, so the pause outlasts it quickly; the successor waits the zombie's lease out.
LEASE_CONF = {"dstream.checkpoint.leaseTimeoutS": "2", "dstream.checkpoint.leaseWaitS": "30"}


def zombie_config(s3: StorageTarget, **changes: Any) -> RunConfig:
    base: dict[str, Any] = {
        "pipeline": "stateful", "sink": "transactional", "seed": 4, "workload": WORKLOAD,
        "schedule": (Step("zombie-pause", 0.5, {"successor_batches": 2}),),
        "checkpoint": s3.url, "checkpoint_options": s3.storage_options, "conf": LEASE_CONF,
        "warmup_s": 0.5, "drain_timeout_s": 60.0, "time_limit_s": 170.0,
    }  # fmt: skip
    base.update(changes)
    return RunConfig(**base)


def test_smoke_a_woken_zombie_stops_without_publishing(tmp_path: Path, s3_moto: StorageTarget) -> None:
    """The default run's smoke (11 to 25 s): stateless, 1 s batches, a 1 s lease, one successor batch."""
    config = zombie_config(
        s3_moto, pipeline="stateless", batch_ms=1000, warmup_s=0.3,
        workload=WorkloadSpec(producers_n=2, keys_per_producer=2, pause_s=0.05),
        schedule=(Step("zombie-pause", 0.3, {"successor_batches": 1}),),
        conf={"dstream.checkpoint.leaseTimeoutS": "1", "dstream.checkpoint.leaseWaitS": "30"},
    )  # fmt: skip
    result = run_chaos(config, tmp_path / "run")
    assert result.valid, result.verdict
    (fault,) = result.verdict["run"]["faults"]
    assert fault["successor_progressed"] and fault["zombie_stopped"] and fault["zombie_exit"] == 3, fault
    events = read_history(result.history_path).events
    assert any(e["f"] == "driver-fenced" and e["pid"] == fault["zombie_pid"] for e in events)


@pytest.mark.slow
def test_a_woken_zombie_publishes_nothing_and_stops_on_its_own(
    tmp_path: Path, s3_moto: StorageTarget
) -> None:
    result = run_chaos(zombie_config(s3_moto), tmp_path / "run")
    verdict = result.verdict
    assert verdict["valid"], verdict
    assert verdict["records"]["acknowledged"] > 0 and verdict["zombie_publish"]["count"] == 0
    (fault,) = verdict["run"]["faults"]
    assert fault["successor_started"] and fault["successor_progressed"], fault
    assert fault["zombie_stopped"] and fault["zombie_exit"] == 3, fault  # chaos.driver_process EXIT_FENCED
    zombie, successor = fault["zombie_pid"], fault["successor_pid"]

    events = read_history(result.history_path).events
    start = next(e for e in events if e["f"] == "fault-start")
    end = next(e for e in events if e["f"] == "fault-end")
    assert start["pid"] == zombie and end["pid"] == successor
    assert end["detail"]["zombie_pid"] == zombie and end["detail"]["successor_pid"] == successor
    assert any(e["f"] == "driver-fenced" and e["pid"] == zombie for e in events)

    # Every commit names its writer: the zombie's all come before its pause, the successor's after.
    writers = [b.writer for b in read_committed_output(result.spec).batches.values()]
    assert writers and all(w is not None for w in writers)
    assert {w.pid for w in writers if w is not None} >= {zombie, successor}
    assert all(w.t < start["t"] for w in writers if w is not None and w.pid == zombie)
    assert all(w.t > start["t"] for w in writers if w is not None and w.pid == successor)
