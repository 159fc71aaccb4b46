"""`dstream chaos`: run chaos suites and re-check saved runs (registered through the `dstream.cli` group).

    dstream chaos run --pipeline stateful --faults driver-kill,crashpoint --seeds 1,2,3
    dstream chaos run --pipeline all --sink transactional --soak 300 --out chaos-runs/soak
    dstream chaos run --checkpoint s3://bucket/chaos --faults driver-kill,zombie-pause --seeds 1,2
    dstream chaos check chaos-runs/x/run-000/history.jsonl chaos-runs/x/run-000/output

`run --checkpoint URL` keeps run n's checkpoint in `URL/run-NNN` (the URL must be reachable and empty;
on an object store the drivers get a short lease, as in a drill); by default each run's checkpoint is
in its own directory. `run` stops at the first invalid run and exits 1 if a run was invalid; `check`
prints the verdict JSON and exits 1 if it is invalid.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import click

from chaos.checkpoint_location import lease_conf, probe_checkpoint
from chaos.errors import ChaosValueError
from chaos.nemesis.schedule import ALL_KINDS, LOCAL_KINDS, REACHABLE_CRASH_POINTS
from chaos.runner import RunConfig, RunResult, recheck
from chaos.spec import PIPELINES, SINKS
from chaos.suite import recheck_suite, run_suite, summary_markdown


def _stop_on_sigterm() -> None:
    """SIGTERM ends a run like Ctrl-C: the runner's `finally` kills and reaps every driver."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def _names(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names == ("all",):
        return allowed
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise click.BadParameter(f"{what} {bad or text!r}: expected some of {', '.join(allowed)} (or all)")
    return names


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"seeds {text!r}: expected integers separated by commas") from None


def _line(index: int, result: RunResult) -> str:
    v, run = result.verdict, result.verdict.get("run", {})
    records = v.get("records", {})
    status = "valid" if result.valid else f"INVALID {','.join(v.get('error_types', []))}"
    return (
        f"run {index:03d} {run.get('pipeline')}/{run.get('sink')} seed {run.get('seed')}: {status}; "
        f"faults {run.get('faults_injected')}, acknowledged {records.get('acknowledged')}, "
        f"lost {records.get('lost')}, duplicated {records.get('duplicated')}, "
        f"unexpected {records.get('unexpected')} ({result.run_dir})"
    )


@click.group()
def chaos() -> None:
    """Chaos suites: seeded faults, a recorded history, and a checker that proves exactly-once."""


@chaos.command("run")
@click.option(
    "--pipeline",
    "pipelines",
    default="stateful",
    show_default=True,
    help=f"Comma-separated: {', '.join(PIPELINES)}, or all.",
)
@click.option(
    "--sink",
    "sinks",
    default="transactional",
    show_default=True,
    help=f"Comma-separated: {', '.join(SINKS)}, or all (canary is meant to fail).",
)
@click.option(
    "--faults",
    default=",".join(LOCAL_KINDS),
    show_default=True,
    help=f"Comma-separated fault kinds: {', '.join(ALL_KINDS)}, or all.",
)
@click.option("--faults-per-run", default=4, show_default=True, type=click.IntRange(0, 1000))
@click.option("--seeds", default="1", show_default=True, help="Comma-separated seeds; one run per seed.")
@click.option("--master", default="local[2]", show_default=True)
@click.option("--source", type=click.Choice(["push", "files"]), default="push", show_default=True)
@click.option(
    "--crash-points",
    default="reachable",
    show_default=True,
    help="Comma-separated crash points for the crashpoint fault, or 'reachable'.",
)
@click.option(
    "--receiver-wal/--no-receiver-wal",
    default=True,
    show_default=True,
    help="--no-receiver-wal runs the mutant the checker must catch (acknowledged data lost).",
)
@click.option(
    "--soak",
    type=click.IntRange(0, 100_000),
    default=0,
    help="Keep running (seeds advanced) until this many faults were injected.",
)
@click.option("--time-limit", type=float, default=600.0, show_default=True, help="Seconds per run.")
@click.option(
    "--checkpoint",
    default=None,
    help="Checkpoint URL (any storage URL, e.g. s3://bucket/chaos), reachable and empty; run n uses"
    " run-NNN/ under it. Default: checkpoint/ in each run's directory.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory for the runs (default: ./chaos-runs/<timestamp>).",
)
def run_command(
    pipelines: str, sinks: str, faults: str, faults_per_run: int, seeds: str, master: str, source: str,
    crash_points: str, receiver_wal: bool, soak: int, time_limit: float, checkpoint: str | None,
    out_dir: Path | None,
) -> None:  # fmt: skip
    """Run chaos runs; stop at the first invalid one; exit 1 if one was invalid."""
    kinds = _names(faults, ALL_KINDS, "fault kinds")
    points = REACHABLE_CRASH_POINTS if crash_points == "reachable" else tuple(crash_points.split(","))
    try:
        object_store = probe_checkpoint(checkpoint) if checkpoint else False
    except ChaosValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--checkpoint") from None
    configs = [
        RunConfig(
            pipeline=p,
            sink=s,
            source=source,
            master=master,
            seed=seed,
            faults=kinds,
            faults_n=faults_per_run,
            crash_points=points,
            receiver_wal=receiver_wal,
            time_limit_s=time_limit,
            checkpoint=checkpoint,
            conf=lease_conf() if object_store else {},
        )
        for seed in _seeds(seeds)
        for p in _names(pipelines, PIPELINES, "pipelines")
        for s in _names(sinks, SINKS, "sinks")
    ]
    out = out_dir or Path("chaos-runs", time.strftime("%Y%m%d-%H%M%S"))
    _stop_on_sigterm()
    ok, summary = run_suite(configs, out, faults_min=soak, on_run=lambda i, r: click.echo(_line(i, r)))
    click.echo(json.dumps(summary, indent=1))
    if not ok:
        raise SystemExit(1)


@chaos.command("check")
@click.argument("history", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("output_url")
@click.option("--recovery-bound", type=float, default=None, help="Liveness bound (default: the run's).")
def check_command(history: Path, output_url: str, recovery_bound: float | None) -> None:
    """Re-check a saved run: its HISTORY file against the committed output at OUTPUT_URL."""
    verdict = recheck(history, output_url, recovery_bound_s=recovery_bound)
    click.echo(json.dumps(verdict, indent=1, sort_keys=True))
    if not verdict.get("valid"):
        raise SystemExit(1)


@chaos.command("summarize")
@click.argument("suite_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--markdown", is_flag=True, help="Print Markdown tables instead of JSON.")
def summarize_command(suite_dir: Path, markdown: bool) -> None:
    """Re-check every run of SUITE_DIR offline and print (and rewrite) its summary table."""
    summary = recheck_suite(suite_dir)
    click.echo(summary_markdown(summary) if markdown else json.dumps(summary, indent=1))
    if summary["invalid_runs"]:
        raise SystemExit(1)
