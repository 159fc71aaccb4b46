"""The drill's report.json and report.md, from a known history and its verdict."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from chaos.checker import check
from chaos.drill.report import build_report, write_report
from chaos.history import History, read_history, write_history
from tests.chaos.simulated import SimRun, simulate


def _saved(run: SimRun, tmp_path: Path) -> tuple[History, dict[str, Any]]:
    write_history(tmp_path / "history.jsonl", run.header, run.events)
    history = read_history(tmp_path / "history.jsonl")
    return history, check(history.events, history.header, run.committed())


def test_report_json_of_a_passing_run(tmp_path: Path) -> None:
    run = simulate(random.Random(30), "stateful", p_fail=0, p_info=0, faults=[("driver-kill", 1.0, 0.2)])
    history, verdict = _saved(run, tmp_path)
    report = write_report(tmp_path / "report", history, verdict, timeline="timeline.png")
    on_disk = json.loads((tmp_path / "report" / "report.json").read_text())
    assert on_disk == report
    assert report["format"] == "dstream-drill-report" and report["version"] == 1
    assert report["verdict"] == "pass"
    assert report["seed"] == run.header["seed"]
    assert (report["master"], report["checkpoint"]) == ("local[2]", "memory://sim")
    assert report["faults"] == [
        {"kind": "driver-kill", "target": "driver-0", "at_s": 1.0, "recovered_s": 0.9}
    ]
    assert report["records"] == {
        "acknowledged": 40,
        "committed": 40,
        "lost": 0,
        "duplicated": 0,
        "unexpected": 0,
    }
    assert report["checker"] == verdict
    assert report["duration_s"] == run.events[-1]["t"]
    md = (tmp_path / "report" / "report.md").read_text()
    assert md.startswith("# dstream drill: PASS")
    assert "| 1 | driver-kill | driver-0 | 1.00 s | 0.90 s |" in md
    assert "![timeline" in md and "No error of any type." in md


def test_report_of_a_failing_run_names_the_errors_and_examples(tmp_path: Path) -> None:
    run = simulate(random.Random(31), "stateless", p_fail=0, p_info=0)
    rid = run.ok_rids()[0]
    run.assignment[max(run.assignment)].append(rid)
    history, verdict = _saved(run, tmp_path)
    report = build_report(history, verdict)
    assert report["verdict"] == "fail"
    assert report["records"]["duplicated"] == 1
    assert report["error_types"] == ["duplicated", "key_repeats"]
    assert report["faults"] == []
    write_report(tmp_path, history, verdict)
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# dstream drill: FAIL")
    assert "The checker found: duplicated (1), key_repeats (1)." in md
    assert "### duplicated: 1" in md and f'"rid": "{rid}"' in md
    assert "No fault was injected." in md and "![timeline" not in md
