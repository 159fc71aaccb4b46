"""A chaos suite: many runs (pipelines x sinks x seeds), stopping at the first invalid one, and its table.

`run_suite` runs `RunConfig`s one after the other in numbered run directories and writes
`summary.json` beside them after every run (so an interrupted soak still has its table). `summarize`
is pure: faults by kind, records lost/duplicated/unexpected, recovery time p50/p99/max over every
fault of every run (from the verdicts' `recovery_s.per_fault`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from chaos.checkpoint_location import run_checkpoint
from chaos.runner import VERDICT_FILE, RunConfig, RunResult, recheck, run_chaos
from chaos.spec import RunSpec

SUMMARY_FILE = "summary.json"


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank q-quantile (0 < q <= 1) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(verdicts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The suite's table from its runs' verdicts (pure)."""
    runs = list(verdicts)
    kinds: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    recovery: list[float] = []
    recovery_by_kind: dict[str, list[float]] = {}
    totals: Counter[str] = Counter()
    for verdict in runs:
        for fault in verdict.get("run", {}).get("faults", []):
            kinds[fault["fault"]] += 1
            if fault["fault"] == "crashpoint":
                hits["hit" if fault.get("hit") else "not reached"] += 1
        for item in verdict.get("recovery_s", {}).get("per_fault", []):
            if item.get("recovered_s") is not None:
                recovery.append(float(item["recovered_s"]))
                recovery_by_kind.setdefault(str(item.get("fault")), []).append(float(item["recovered_s"]))
        for key in ("acknowledged", "committed", "lost", "duplicated", "unexpected"):
            totals[key] += int(verdict.get("records", {}).get(key, 0))
    return {
        "runs": len(runs),
        "invalid_runs": sum(not v.get("valid") for v in runs),
        "faults": sum(kinds.values()),
        "faults_by_kind": dict(sorted(kinds.items())),
        "crash_points": dict(hits),
        "records": dict(totals),
        "recovery_s": _stats(recovery),
        "recovery_s_by_kind": {kind: _stats(values) for kind, values in sorted(recovery_by_kind.items())},
    }


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50": percentile(values, 0.5),
        "p99": percentile(values, 0.99),
        "max": max(values, default=None),
    }


def run_suite(
    configs: Iterable[RunConfig],
    out_dir: Path,
    *,
    faults_min: int = 0,
    on_run: Callable[[int, RunResult], None] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Run `configs` in `out_dir/run-NNN/` until one is invalid (or, with `faults_min`, until that many
    faults were injected: the configs are then taken in turn again and again, and run number n runs
    with its config's seed plus n, so every run of a soak has its own schedule). A config that names a
    checkpoint URL has run n keep its checkpoint in `run-NNN/` under it (`run_checkpoint`).

    Returns:
        (every run valid, the summary also written to `out_dir/summary.json`).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    base = list(configs)
    verdicts: list[Mapping[str, Any]] = []
    summary = summarize(verdicts)
    while True:
        for config in base:
            if faults_min:
                config = replace(config, seed=config.seed + len(verdicts))
            if config.checkpoint is not None:
                config = replace(config, checkpoint=run_checkpoint(config.checkpoint, len(verdicts)))
            result = run_chaos(config, out_dir / f"run-{len(verdicts):03d}", on_event)
            verdicts.append(result.verdict)
            summary = summarize(verdicts)
            (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1), encoding="utf-8")
            if on_run is not None:
                on_run(len(verdicts) - 1, result)
            if not result.valid:
                return False, summary
            if faults_min and summary["faults"] >= faults_min:
                return True, summary
        if not faults_min:
            return True, summary


def recheck_suite(out_dir: Path) -> dict[str, Any]:
    """Check every run of a suite directory again offline (e.g. with a newer checker) and rewrite
    `summary.json` from the new verdicts; each run keeps its recorded fault details."""
    verdicts = []
    for run_dir in sorted(out_dir.glob("run-*")):
        if not (run_dir / VERDICT_FILE).exists():
            continue  # interrupted before its check
        old = json.loads((run_dir / VERDICT_FILE).read_text(encoding="utf-8"))
        spec = RunSpec.load(run_dir / "spec.json")
        verdict = {**recheck(run_dir / "history.jsonl", spec.output), "run": old.get("run", {})}
        for kind in ("split_brain_not_refused", "producer_crashed"):
            if kind in old:
                verdict[kind] = old[kind]
                verdict["valid"] = False
        (run_dir / "verdict-rechecked.json").write_text(json.dumps(verdict, indent=1), encoding="utf-8")
        verdicts.append(verdict)
    summary = summarize(verdicts)
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as the Markdown tables docs/chaos.md shows."""
    records, recovery = summary["records"], summary["recovery_s"]

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    by_kind = summary.get("recovery_s_by_kind", {})

    def kind_row(kind: str, n: int) -> str:
        stats = by_kind.get(kind, {})
        p50, p99, top = (seconds(stats.get(k)) for k in ("p50", "p99", "max"))
        return f"| {kind} | {n} | {p50} | {p99} | {top} |"

    lines = [
        f"{summary['runs']} runs, {summary['invalid_runs']} invalid, {summary['faults']} faults injected.",
        "",
        "| fault kind | injected | recovery p50 (s) | p99 | max |",
        "|---|---|---|---|---|",
        *(kind_row(kind, n) for kind, n in summary["faults_by_kind"].items()),
        "",
        "| acknowledged | committed | lost | duplicated | unexpected |",
        "|---|---|---|---|---|",
        "| {acknowledged} | {committed} | {lost} | {duplicated} | {unexpected} |".format(**records),
        "",
        "| recovery time (s) | p50 | p99 | max |",
        "|---|---|---|---|",
        f"| {recovery['count']} faults | {seconds(recovery['p50'])} | {seconds(recovery['p99'])} "
        f"| {seconds(recovery['max'])} |",
    ]
    return "\n".join(lines) + "\n"
