"""`dstream chaos run` and `dstream chaos check` through click's CliRunner (the runs themselves are in
test_smoke.py and test_matrix.py)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaos.checkpoint_location import run_checkpoint
from chaos.history import run_header, write_history
from chaos.runner import header_run
from chaos.spec import RunSpec
from dstream.cli.main import main


def test_run_refuses_unknown_fault_kinds_and_pipelines_by_name() -> None:
    result = CliRunner().invoke(main, ["chaos", "run", "--faults", "driver-kill,meteor"])
    assert result.exit_code == 2 and "['meteor']" in result.output
    result = CliRunner().invoke(main, ["chaos", "run", "--pipeline", "streamy"])
    assert result.exit_code == 2 and "['streamy']" in result.output


def test_run_refuses_a_checkpoint_url_in_use_or_unreachable(tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "metadata").write_bytes(b"x")
    result = CliRunner().invoke(
        main, ["chaos", "run", "--checkpoint", str(used), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and f"checkpoint {str(used)!r} is not empty (1 entries)" in result.output
    result = CliRunner().invoke(
        main, ["chaos", "run", "--checkpoint", "nosuch://x", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "checkpoint 'nosuch://x' is not reachable" in result.output
    assert not (tmp_path / "o").exists()  # refused before any run started


@pytest.mark.chaos
def test_each_run_keeps_its_checkpoint_under_the_given_url(tmp_path: Path) -> None:
    base = tmp_path / "checkpoints"
    args = ["chaos", "run", "--pipeline", "stateless", "--faults", "driver-kill", "--faults-per-run", "1"]
    on_sigterm = signal.getsignal(signal.SIGTERM)  # `run` makes SIGTERM stop it: not this process's
    try:
        result = CliRunner().invoke(main, [*args, "--checkpoint", str(base), "--out", str(tmp_path / "runs")])
    finally:
        signal.signal(signal.SIGTERM, on_sigterm)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "runs" / "summary.json").read_text())
    assert summary["invalid_runs"] == 0 and summary["faults_by_kind"] == {"driver-kill": 1}
    assert run_checkpoint(str(base), 0) == str(base / "run-000")
    assert any((base / "run-000").iterdir())  # the drivers checkpointed there, and recovered from it
    assert not (tmp_path / "runs" / "run-000" / "checkpoint").exists()


def saved_run(tmp_path: Path, sent_rids: list[str], committed: dict[int, list[str]]) -> tuple[Path, Path]:
    out = tmp_path / "output"
    spec = RunSpec("stateless", "canary", "local[2]", str(tmp_path / "ckpt"), str(out))
    header = run_header(1, header_run(spec, [], 60.0))
    events = []
    for i, rid in enumerate(sent_rids):
        common = {
            "proc": "producer-0",
            "f": "send",
            "rid": rid,
            "stream": "a",
            "key": "k",
            "seq": i + 1,
            "value": 1,
        }
        events += [{"t": 2 * i, "type": "invoke", **common}, {"t": 2 * i + 1, "type": "ok", **common}]
    events.append({"t": 100, "proc": "runner", "f": "drained", "type": "info"})
    write_history(tmp_path / "history.jsonl", header, events)
    for batch_ms, rids in committed.items():  # the canary's layout: <url>/<batch>/part-*.jsonl
        (out / str(batch_ms)).mkdir(parents=True)
        lines = [{"c": r} for r in rids] + [{"r": [r, "k", rids.index(r) + 1, 1]} for r in rids]
        (out / str(batch_ms) / "part-00000-1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return tmp_path / "history.jsonl", out


def test_check_rechecks_a_saved_run_offline(tmp_path: Path) -> None:
    history, out = saved_run(tmp_path, ["r1", "r2"], {1000: ["r1", "r2"]})
    result = CliRunner().invoke(main, ["chaos", "check", str(history), str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["valid"] is True


def test_check_exits_1_on_a_lost_record(tmp_path: Path) -> None:
    history, out = saved_run(tmp_path, ["r1", "r2"], {1000: ["r1"]})
    result = CliRunner().invoke(main, ["chaos", "check", str(history), str(out)])
    assert result.exit_code == 1
    verdict = json.loads(result.output)
    assert verdict["valid"] is False
    assert [e["rid"] for e in verdict["lost"]["examples"]] == ["r2"]
