"""The drill's report: report.json for machines and report.md for people, from a history and a verdict.

`report.json` (format "dstream-drill-report", version 1) holds::

    {"format": "dstream-drill-report", "version": 1,
     "verdict": "pass" | "fail",          # "pass" only if the checker found the run valid
     "seed": int, "master": str, "checkpoint": str, "pipeline": str, "sink": str,
     "duration_s": float,                 # "t" of the history's last event
     "faults": [{"kind", "target", "at_s", "recovered_s"}],   # recovered_s null if it never recovered
     "records": {"acknowledged", "committed", "lost", "duplicated", "unexpected"},
     "recovery_s": {"p50", "p99", "max"},
     "error_types": [...],                # the checker's, for a quick look
     "checker": {...}}                    # the checker's full output

`report.md` says the same in tables, with up to three examples per error type and the timeline image
when one was drawn beside it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaos.history import History

REPORT_FORMAT = "dstream-drill-report"
REPORT_VERSION = 1
RECORD_KEYS = ("acknowledged", "committed", "lost", "duplicated", "unexpected")
MD_EXAMPLES_MAX = 3


def build_report(
    history: History, verdict: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The report.json object of one run (pure); `extra` adds keys (the drill's directory, ...)."""
    run = history.run
    recovery = verdict["recovery_s"]
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "verdict": "pass" if verdict["valid"] else "fail",
        "seed": history.seed,
        "master": run["master"],
        "checkpoint": run["checkpoint"],
        "pipeline": run["pipeline"],
        "sink": run["sink"],
        "duration_s": history.events[-1]["t"] if history.events else 0.0,
        "faults": [
            {"kind": f["fault"], "target": f["target"], "at_s": f["at_s"], "recovered_s": f["recovered_s"]}
            for f in recovery["per_fault"]
        ],
        "records": {key: verdict["records"][key] for key in RECORD_KEYS},
        "recovery_s": {key: recovery[key] for key in ("p50", "p99", "max")},
        "error_types": list(verdict["error_types"]),
        **(extra or {}),
        "checker": dict(verdict),
    }


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def render_markdown(report: Mapping[str, Any], *, timeline: str | None = None) -> str:
    """report.md's text (pure). `timeline` is the image's file name, if one was drawn."""
    verdict = report["verdict"].upper()
    lines = [
        f"# dstream drill: {verdict}",
        "",
        _verdict_sentence(report),
        "",
        "| run | |",
        "|---|---|",
        f"| seed | {report['seed']} |",
        f"| master | `{report['master']}` |",
        f"| checkpoint | `{report['checkpoint']}` |",
        f"| pipeline / sink | {report['pipeline']} / {report['sink']} |",
        f"| duration | {_seconds(report['duration_s'])} |",
        "",
        "## Records",
        "",
        "| " + " | ".join(RECORD_KEYS) + " |",
        "|" + "---:|" * len(RECORD_KEYS),
        "| " + " | ".join(str(report["records"][key]) for key in RECORD_KEYS) + " |",
        "",
        "## Faults",
        "",
    ]
    if report["faults"]:
        lines += ["| # | kind | target | at | recovered after |", "|---:|---|---|---:|---:|"]
        for n, fault in enumerate(report["faults"], start=1):
            recovered = _seconds(fault["recovered_s"]) if fault["recovered_s"] is not None else "**never**"
            lines.append(
                f"| {n} | {fault['kind']} | {fault['target']} | {_seconds(fault['at_s'])} | {recovered} |"
            )
        rec = report["recovery_s"]
        lines += [
            "",
            f"Recovery time: p50 {_seconds(rec['p50'])}, p99 {_seconds(rec['p99'])}, "
            f"max {_seconds(rec['max'])}.",
        ]
    else:
        lines.append("No fault was injected.")
    if report.get("not_applicable"):
        lines += ["", f"Not applicable on `{report['master']}`: {', '.join(report['not_applicable'])}."]
    if timeline:
        lines += ["", f"![timeline: throughput and lag, faults shaded]({timeline})"]
    lines += ["", "## Checker", "", *_error_sections(report["checker"])]
    return "\n".join(lines) + "\n"


def _verdict_sentence(report: Mapping[str, Any]) -> str:
    if report["verdict"] == "pass":
        return (
            f"Every acknowledged record was committed exactly once ({report['records']['acknowledged']} "
            f"acknowledged) and the pipeline was live again after each of the {len(report['faults'])} faults."
        )
    return (
        "The checker found: "
        + ", ".join(f"{name} ({report['checker'][name]['count']})" for name in report["error_types"])
        + "."
    )


def _error_sections(checker: Mapping[str, Any]) -> list[str]:
    if not checker["error_types"]:
        lines = ["No error of any type."]
    else:
        lines = []
        for name in checker["error_types"]:
            found = checker[name]
            lines += [f"### {name}: {found['count']}", "", "```json"]
            lines += [json.dumps(example, sort_keys=True) for example in found["examples"][:MD_EXAMPLES_MAX]]
            lines += ["```", ""]
    quarantined = checker["quarantined"]["count"]
    if quarantined:
        lines += ["", f"Quarantined (reported apart, not lost): {quarantined} records."]
    return lines


def write_report(
    report_dir: str | Path,
    history: History,
    verdict: Mapping[str, Any],
    *,
    timeline: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write report.json and report.md into `report_dir` (created if needed); returns the report.

    Args:
        report_dir: where to write.
        history: the run's complete history.
        verdict: `chaos.checker.check`'s output for it.
        timeline: the timeline image's file name inside `report_dir`, to link from report.md.
        extra: keys added to report.json (see `build_report`).
    """
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(history, verdict, extra)
    (out / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report, timeline=timeline), encoding="utf-8")
    return report
