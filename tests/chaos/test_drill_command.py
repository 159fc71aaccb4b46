"""`dstream drill`: its options (fast, in process), and end to end in a subprocess (marked chaos).

The end-to-end tests recount the committed output themselves (the history's acknowledgements against
the sink's committed view, read with H3's reader but counted here) and compare with report.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from chaos.checkpoint_location import LEASE_TIMEOUT_KEY, LEASE_WAIT_KEY, probe_checkpoint
from chaos.committed_output import read_committed_output
from chaos.drill.command import drill_config, fault_kinds
from chaos.errors import ChaosValueError
from chaos.spec import RunSpec
from wal.storage import resolve_storage

ROOT = Path(__file__).resolve().parents[2]
DRILL_TIMEOUT_S = 150.0


# -- options ------------------------------------------------------------------------------------


def test_fault_names_map_to_kinds_by_master() -> None:
    assert fault_kinds("driver,worker,receiver,crashpoint", "local[*]") == (
        "driver-kill",
        "worker-kill",
        "receiver-crash",
        "crashpoint",
    )
    assert fault_kinds("receiver, pause,storage", "local-cluster[2]") == (
        "receiver-crash",  # restarted where it runs: a driver thread, or its Dask worker
        "pause",
        "storage",
    )
    assert fault_kinds("receiver-worker,receiver-worker-kill,worker", "local-cluster[2]") == (
        "receiver-worker-kill",
        "worker-kill",
    )
    assert fault_kinds("driver,driver-kill", "local[2]") == ("driver-kill",)
    with pytest.raises(ChaosValueError, match="fault 'bogus': expected some of driver"):
        fault_kinds("driver,bogus", "local[2]")


def _config(**changes: Any) -> Any:
    base: dict[str, Any] = {
        "kinds": ("driver-kill", "worker-kill", "receiver-crash", "crashpoint"),
        "master": "local[*]",
        "seed": 4,
        "duration_s": 40.0,
        "pipeline": "stateful",
        "sink": "transactional",
        "checkpoint": None,
        "recovery_bound_s": 60.0,
        "object_store": False,
    }
    base.update(changes)
    return drill_config(**base)


def test_the_schedule_runs_each_applicable_fault_once_spread_over_the_duration() -> None:
    config = _config()
    kinds = [step.kind for step in config.schedule]
    assert sorted(kinds) == ["crashpoint", "driver-kill", "receiver-crash"]  # no worker on local[*]
    assert "worker-kill" in config.faults  # asked for; the command reports it as not applicable
    assert all(step.gap_s == pytest.approx((40.0 - 1.5) / 3 - 3.0, abs=1e-3) for step in config.schedule)
    assert config.conf == {} and config.recovery_bound_s == 60.0
    assert _config().schedule == config.schedule  # same seed, same drill


def test_the_seed_picks_the_crash_point_and_object_stores_get_a_short_lease() -> None:
    points = {_config(seed=seed, kinds=("crashpoint",)).schedule[0].detail["point"] for seed in range(9)}
    assert len({p.partition("@")[0] for p in points}) == 9
    config = _config(checkpoint="s3://bucket/drill", object_store=True)
    assert config.conf == {LEASE_TIMEOUT_KEY: "5", LEASE_WAIT_KEY: "15"}
    assert config.checkpoint == "s3://bucket/drill"


def test_a_zombie_is_drilled_only_on_an_object_store_checkpoint() -> None:
    assert fault_kinds("zombie,driver", "local[*]") == ("zombie-pause", "driver-kill")
    local = _config(kinds=("zombie-pause", "driver-kill"))
    assert [step.kind for step in local.schedule] == ["driver-kill"]
    s3 = _config(kinds=("zombie-pause", "driver-kill"), checkpoint="s3://bucket/drill", object_store=True)
    assert sorted(step.kind for step in s3.schedule) == ["driver-kill", "zombie-pause"]


def test_probe_refuses_a_used_or_unreachable_checkpoint() -> None:
    storage, path = resolve_storage("memory://h5-drill-probe/used")
    storage.make_dirs(path)
    storage.create_once(f"{path}/metadata", b"x")
    with pytest.raises(ChaosValueError, match=r"is not empty \(1 entries\)"):
        probe_checkpoint("memory://h5-drill-probe/used")
    assert probe_checkpoint("memory://h5-drill-probe/fresh") is False
    with pytest.raises(ChaosValueError, match="checkpoint 'nosuch://x' is not reachable"):
        probe_checkpoint("nosuch://x")


def test_a_bad_option_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dstream.cli", "drill", "--faults", "driver,meteor"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: fault 'meteor': expected some of driver, worker, receiver, receiver-worker, pause, "
        "crashpoint, storage (or a fault kind)"
    ]


# -- end to end -------------------------------------------------------------------------------


def run_drill(drill_dir: Path, *args: str) -> tuple[int, str, str]:
    """Run `dstream drill` in a child; on timeout it gets SIGTERM (it then reaps its drivers)."""
    command = [sys.executable, "-m", "dstream.cli", "drill", "--dir", str(drill_dir), *args]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=DRILL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGTERM)
        try:
            out, err = child.communicate(timeout=60)
        finally:
            child.kill()
            child.wait()
        raise AssertionError(f"the drill outlived {DRILL_TIMEOUT_S} s: {err[-2000:]}") from None
    return child.returncode, out, err


def recount(drill_dir: Path) -> dict[str, int]:
    """Records, counted from the history file and the sink's committed view (not by the checker)."""
    lines = (drill_dir / "history.jsonl").read_text().splitlines()[1:]
    events = [json.loads(line) for line in lines]
    acked = {e["rid"] for e in events if e["f"] == "send" and e["type"] == "ok"}
    sent = {e["rid"] for e in events if e["f"] == "send" and e["type"] in ("ok", "info")}
    committed = read_committed_output(RunSpec.load(drill_dir / "spec.json"))
    counts = Counter(rid for batch in committed.batches.values() for rid in batch.consumed)
    return {
        "acknowledged": len(acked),
        "committed": len(counts),
        "lost": len(acked - set(counts) - set(committed.quarantined)),
        "duplicated": sum(1 for n in counts.values() if n > 1),
        "unexpected": len(set(counts) - sent),
    }


def driver_pids(drill_dir: Path) -> set[int]:
    pids = set()
    for part in drill_dir.glob("driver-*.jsonl"):
        for line in part.read_text().splitlines()[1:]:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line torn by SIGKILL
            if isinstance(event.get("pid"), int):
                pids.add(event["pid"])
    return pids


def assert_gone(pids: set[int]) -> None:
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone and reaped (a zombie would still answer)


@pytest.mark.chaos
@pytest.mark.timeout(300)
def test_a_drill_passes_and_its_report_matches_an_independent_recount(tmp_path: Path) -> None:
    drill_dir = tmp_path / "drill"
    code, out, err = run_drill(drill_dir, "--duration", "6", "--seed", "2", "--json")
    assert code == 0, err[-3000:]
    report = json.loads(out)
    assert report == json.loads((drill_dir / "report.json").read_text())
    assert report["verdict"] == "pass" and report["checker"]["valid"]
    assert report["records"] == recount(drill_dir)
    assert report["records"]["acknowledged"] > 0
    kinds = sorted(f["kind"] for f in report["faults"])
    assert kinds == ["crashpoint", "driver-kill", "receiver-crash", "worker-kill"]
    assert all(f["recovered_s"] is not None for f in report["faults"])
    assert report["not_applicable"] == [] and report["master"] == "local-cluster[2]"
    for name in ("report.md", "timeline.png", "history.jsonl"):
        assert (drill_dir / name).stat().st_size > 0
    assert "fault 1:" in err and "drained" in err  # the live view went to stderr (plain: not a tty)
    assert_gone(driver_pids(drill_dir))


@pytest.mark.chaos
@pytest.mark.timeout(300)
def test_a_drill_against_the_canary_sink_fails_with_duplicates(tmp_path: Path) -> None:
    """Seed 10 arms sink.after_stage_before_commit, which the canary hits only after it wrote a
    batch's records: the replacement re-runs that batch and the canary writes them again, so the
    duplicate is certain on any master (here the default, local-cluster[2]). The pipeline is the
    stateless one, whose output rows are the consumed records: a stateful pipeline writes state rows
    for a batch that consumed nothing, and a crash after those is caught as a wrong aggregate, not as
    a duplicated record."""
    drill_dir = tmp_path / "drill"
    report_dir = tmp_path / "report"
    code, out, err = run_drill(
        drill_dir, "--pipeline", "stateless", "--sink", "canary", "--faults", "crashpoint",
        "--duration", "6", "--seed", "10", "--report-dir", str(report_dir),
    )  # fmt: skip
    assert code == 1, err[-3000:]
    events = [json.loads(line) for line in (drill_dir / "history.jsonl").read_text().splitlines()[1:]]
    (end,) = [e for e in events if e["f"] == "fault-end"]
    assert end["detail"]["point"].startswith("sink.after_stage_before_commit@") and end["detail"]["hit"]
    report = json.loads((report_dir / "report.json").read_text())
    assert report["verdict"] == "fail" and "duplicated" in report["error_types"]
    assert report["records"] == recount(drill_dir)
    assert report["records"]["duplicated"] > 0
    assert (report_dir / "history.jsonl").exists() and (report_dir / "timeline.png").exists()
    assert "verdict: FAIL" in out and "duplicated" in out
    assert_gone(driver_pids(drill_dir))


@pytest.mark.chaos
@pytest.mark.timeout(300)
def test_an_interrupted_drill_says_so_in_one_line_and_leaves_no_driver(tmp_path: Path) -> None:
    drill_dir = tmp_path / "drill"
    command = [sys.executable, "-m", "dstream.cli", "drill", "--dir", str(drill_dir), "--duration", "30"]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        for _ in range(10_000):  # bounded: the drill prints a line per fault and per 5 s
            line = child.stdout.readline()
            if not line or "fault 1:" in line:
                break
        assert "fault 1:" in line
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert child.returncode == 1
    assert err.strip().splitlines()[-1] == "Error: drill interrupted; every process it started was stopped"
    pids = driver_pids(drill_dir)
    assert pids
    assert_gone(pids)
