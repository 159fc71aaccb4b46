"""The chaos smoke of the default run: one stateful pipeline under a seeded schedule of every local
fault kind the issue names (a driver kill right after a checkpoint, a receiver crash, two crash points,
a storage fault and a second driver), checked end to end; the same schedule against the at-least-once
canary must be flagged as duplicated, and a mutant without the receiver WAL must be caught as lost.
Also: an interrupted run leaves no driver process behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from chaos.nemesis.schedule import Step
from chaos.runner import RunConfig, run_chaos
from chaos.workload import WorkloadSpec

pytestmark = pytest.mark.chaos

WORKLOAD = WorkloadSpec(producers_n=3, keys_per_producer=3, pause_s=0.05)
TORN_WAL_THEN_CRASH = {
    "format": "dstream-storage-faults",
    "version": 1,
    "seed": 7,
    "rules": [{"fault": "torn", "after": 3, "count_max": 1, "then": "crash", "roles": ["wal"]}],
}
SMOKE = (
    Step("driver-kill", 0.5, {"when": "after-checkpoint", "delay_s": 0.0, "burst": 1}),
    Step("receiver-crash", 0.5, {}),
    Step("crashpoint", 0.5, {"point": "sink.after_stage_before_commit@2"}),
    Step("crashpoint", 0.5, {"point": "metadata.after_write_before_publish@2"}),
    Step("storage", 0.5, {"scenario": "torn-crash", "plan": TORN_WAL_THEN_CRASH}),
    Step("split-brain", 0.5, {}),
)


def smoke_config(**changes: Any) -> RunConfig:
    base: dict[str, Any] = {
        "pipeline": "stateful", "sink": "transactional", "seed": 15, "schedule": SMOKE,
        "workload": WORKLOAD, "warmup_s": 0.5, "crash_wait_s": 8.0, "drain_timeout_s": 60.0,
        "time_limit_s": 170.0,
    }  # fmt: skip
    base.update(changes)
    return RunConfig(**base)


def test_stateful_pipeline_is_exactly_once_under_the_smoke_schedule(tmp_path: Path) -> None:
    result = run_chaos(smoke_config(), tmp_path / "run")
    verdict = result.verdict
    assert verdict["valid"], verdict
    assert verdict["records"]["acknowledged"] > 0
    assert (
        verdict["records"]["committed"]
        == verdict["records"]["acknowledged"] + (verdict["records"]["recovered_info"])
    )
    faults = verdict["run"]["faults"]
    assert [f["fault"] for f in faults] == [s.kind for s in SMOKE]
    assert all(f["hit"] for f in faults if f["fault"] == "crashpoint"), faults
    assert next(f for f in faults if f["fault"] == "split-brain")["refused"], faults
    assert next(f for f in faults if f["fault"] == "receiver-crash")["receiver_restarted"], faults
    assert (result.run_dir / "history.jsonl").exists() and (result.run_dir / "verdict.json").exists()


def test_the_same_schedule_against_the_canary_sink_is_flagged_as_duplicated(tmp_path: Path) -> None:
    result = run_chaos(smoke_config(sink="canary", crash_wait_s=3.0), tmp_path / "run")
    assert not result.valid
    assert "duplicated" in result.verdict["error_types"]
    assert result.verdict["duplicated"]["count"] > 0 and result.verdict["duplicated"]["examples"]


def test_a_mutant_without_the_receiver_wal_is_caught_losing_acknowledged_records(tmp_path: Path) -> None:
    kills = (
        Step("driver-kill", 1.0, {"when": "random", "delay_s": 0.2, "burst": 1}),
        Step("driver-kill", 1.0, {"when": "random", "delay_s": 0.1, "burst": 1}),
    )
    # Its lost records never arrive, so the drain would wait out its whole bound: keep that short.
    config = smoke_config(schedule=kills, receiver_wal=False, drain_timeout_s=8.0)
    result = run_chaos(config, tmp_path / "run")
    assert not result.valid
    assert "lost" in result.verdict["error_types"]
    assert result.verdict["lost"]["count"] > 0


def test_an_interrupted_run_leaves_no_driver_behind(tmp_path: Path) -> None:
    pids: set[int] = set()

    def interrupt(event: dict[str, Any]) -> None:
        if isinstance(event.get("pid"), int) and event["proc"].startswith("driver"):
            pids.add(event["pid"])
        if event["proc"] == "nemesis" and event["f"] == "fault-end":
            raise KeyboardInterrupt  # as Ctrl-C would, in the runner's main thread

    schedule = (Step("driver-kill", 0.2, {"when": "random", "delay_s": 0.0, "burst": 1}),)
    with pytest.raises(KeyboardInterrupt):
        run_chaos(smoke_config(schedule=schedule), tmp_path / "run", on_event=interrupt)
    assert len(pids) >= 2  # the first driver and its replacement
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone and reaped (a zombie would still answer)
