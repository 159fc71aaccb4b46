"""`dstream drill`: a recovery drill from the command line (registered in the `dstream.cli` group).

    dstream drill                                  # stateful pipeline, driver/worker/receiver/crash point
    dstream drill --checkpoint s3://bucket/drill --faults driver,pause,storage --seed 7 --json

One chaos run (`chaos.runner.run_chaos`) with a schedule that injects each requested fault in turn,
spread over `--duration` seconds, watched through the live view, then checked; the report
(report.json, report.md, timeline.png, next to history.jsonl) goes to `--report-dir` (default: the
drill's directory `./dstream-drill/<timestamp>/`). Exit status 0 only if exactly-once held and the
pipeline was live again within `--recovery-bound` after every fault; 1 if not; errors are one line.

Fault names: driver (driver-kill), worker (worker-kill), receiver (receiver-crash: every receiver is
told to restart, where it runs: a driver thread on `local[*]`, its Dask worker on a cluster),
receiver-worker (receiver-worker-kill: SIGKILL of the worker process hosting a receiver; the receiver
starts again on another worker and the producers follow it), pause, crashpoint, storage, zombie
(zombie-pause: a driver paused past its lease wakes after a successor took over; an object-store
`--checkpoint` only); any fault kind of the history format is accepted too. Kinds the master or
checkpoint cannot inject (a worker or a receiver's worker on `local[*]`, a zombie on a local
checkpoint) are reported as not applicable. On an object store the
drivers get a short lease, so a killed driver's successor need not wait out the default, and wait for
it rather than give up when it finds the lease still held (chaos.checkpoint_location).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from chaos.checker.model import CommittedOutput
from chaos.checkpoint_location import LEASE_TIMEOUT_S, lease_conf, probe_checkpoint
from chaos.committed_output import read_committed_output
from chaos.drill.live_view import LiveView
from chaos.drill.report import write_report
from chaos.errors import ChaosError, ChaosValueError
from chaos.history import FAULT_KINDS, read_history
from chaos.nemesis.schedule import REACHABLE_CRASH_POINTS, applicable, plan
from chaos.runner import RunConfig, RunResult, run_chaos
from chaos.spec import PIPELINES, SINKS

DEFAULT_MASTER = "local-cluster[2]"  # two Dask worker processes: a worker can be killed
DEFAULT_FAULTS = "driver,worker,receiver,crashpoint"
WARMUP_S = 1.5
RECOVERY_ALLOWANCE_S = 3.0  # a fault's expected recovery, left out of the gap before the next one
TIMELINE_FILE = "timeline.png"

_ALIASES = {
    "driver": "driver-kill",
    "worker": "worker-kill",
    "receiver": "receiver-crash",
    "receiver-worker": "receiver-worker-kill",
    "zombie": "zombie-pause",
}


def fault_kinds(names: str, master: str) -> tuple[str, ...]:
    """The history's fault kinds for the drill's comma-separated fault names.

    Raises:
        ChaosValueError: an unknown name.
    """
    kinds = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if _ALIASES.get(name, name) in FAULT_KINDS:
            kinds.append(_ALIASES.get(name, name))
        else:
            expected = (
                "driver, worker, receiver, receiver-worker, pause, crashpoint, storage (or a fault kind)"
            )
            raise ChaosValueError(f"fault {name!r}: expected some of {expected}")
    return tuple(dict.fromkeys(kinds))


def drill_config(
    *, kinds: tuple[str, ...], master: str, seed: int, duration_s: float, pipeline: str, sink: str,
    checkpoint: str | None, recovery_bound_s: float, object_store: bool,
) -> RunConfig:  # fmt: skip
    """The run: each applicable kind once, in a seeded order, spread over about `duration_s`."""
    usable, _ = applicable(kinds, master, object_store=object_store)
    turn = seed % len(REACHABLE_CRASH_POINTS)  # the seed also picks which crash point a drill hits
    points = REACHABLE_CRASH_POINTS[turn:] + REACHABLE_CRASH_POINTS[:turn]
    steps = plan(seed, usable, len(usable), crash_points=points[:1])  # plan() starts at a seeded turn
    gap_s = max(0.5, (duration_s - WARMUP_S) / max(1, len(steps)) - RECOVERY_ALLOWANCE_S)
    steps = [replace(step, gap_s=round(gap_s, 3)) for step in steps]
    return RunConfig(
        pipeline=pipeline, sink=sink, master=master, seed=seed, faults=kinds, faults_n=len(steps),
        schedule=tuple(steps), crash_points=points, checkpoint=checkpoint, recovery_bound_s=recovery_bound_s,
        warmup_s=WARMUP_S if steps else duration_s, time_limit_s=duration_s * 3 + 180.0,
        conf=lease_conf() if object_store else {},
    )  # fmt: skip


def _stop_on_sigterm() -> None:
    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _committed(result: RunResult) -> CommittedOutput | None:
    try:
        return read_committed_output(result.spec)
    except Exception:  # the timeline can do without it: it then counts batches
        return None


def write_drill_report(result: RunResult, report_dir: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """report.json, report.md and timeline.png of a finished run, plus its history if elsewhere."""
    # Imported here: matplotlib takes a second or two to load, and every `dstream` command loads this
    # module (the dstream.cli entry points), so only a drill that ends pays for it.
    from chaos.drill.timeline import draw_timeline, timeline_series

    report_dir.mkdir(parents=True, exist_ok=True)
    history = read_history(result.history_path)
    verdict = "PASS" if result.valid else "FAIL"
    title = f"dstream drill · {history.run['pipeline']} · seed {history.seed} · {verdict}"
    draw_timeline(
        timeline_series(history.events, _committed(result)), report_dir / TIMELINE_FILE, title=title
    )
    if report_dir.resolve() != result.run_dir.resolve():
        (report_dir / result.history_path.name).write_bytes(result.history_path.read_bytes())
    return write_report(report_dir, history, result.verdict, timeline=TIMELINE_FILE, extra=extra)


def _table(report: dict[str, Any]) -> str:
    records = report["records"]
    lines = [
        f"verdict: {report['verdict'].upper()}   seed {report['seed']}   master {report['master']}",
        "records: " + ", ".join(f"{key} {value}" for key, value in records.items()),
    ]
    for n, fault in enumerate(report["faults"], start=1):
        back = "never" if fault["recovered_s"] is None else f"{fault['recovered_s']:.1f} s"
        lines.append(f"fault {n}: {fault['kind']:<22} at {fault['at_s']:6.1f} s   recovered after {back}")
    if report.get("not_applicable"):
        lines.append(f"not applicable on {report['master']}: {', '.join(report['not_applicable'])}")
    if report["error_types"]:
        lines.append("errors: " + ", ".join(report["error_types"]))
    return "\n".join(lines)


@click.command("drill")
@click.option("--checkpoint", default=None, help="Checkpoint URL (any storage URL, e.g. s3://bucket/drill); "
              "default: checkpoint/ in the drill's directory.")  # fmt: skip
@click.option("--master", default=DEFAULT_MASTER, show_default=True)
@click.option("--faults", default=DEFAULT_FAULTS, show_default=True,
              help="Comma-separated: driver, worker, receiver, receiver-worker, pause, crashpoint, "
              "storage, zombie.")  # fmt: skip
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--duration", type=click.FloatRange(5.0, 3600.0), default=40.0, show_default=True,
              help="Seconds of faults and traffic (warm-up and drain come on top).")  # fmt: skip
@click.option("--pipeline", type=click.Choice(PIPELINES), default="stateful", show_default=True)
@click.option("--sink", type=click.Choice(SINKS), default="transactional", show_default=True)
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the report goes (default: the drill's directory).")  # fmt: skip
@click.option(
    "--json", "as_json", is_flag=True, help="Print report.json on stdout (the live view goes to stderr)."
)
@click.option("--recovery-bound", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Seconds within which the pipeline must be live again after a fault.")  # fmt: skip
@click.option("--dir", "drill_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The drill's directory (default: ./dstream-drill/<timestamp>).")  # fmt: skip
def drill(
    checkpoint: str | None, master: str, faults: str, seed: int, duration: float, pipeline: str, sink: str,
    report_dir: Path | None, as_json: bool, recovery_bound: float, drill_dir: Path | None,
) -> None:  # fmt: skip
    """Rehearse failure: kill the driver, a worker and a receiver in turn, recover, and prove exactly-once."""
    kinds = fault_kinds(faults, master)
    run_dir = (drill_dir or Path("dstream-drill", time.strftime("%Y%m%d-%H%M%S"))).absolute()
    object_store = probe_checkpoint(checkpoint) if checkpoint else False
    config = drill_config(
        kinds=kinds, master=master, seed=seed, duration_s=duration, pipeline=pipeline, sink=sink,
        checkpoint=checkpoint, recovery_bound_s=recovery_bound, object_store=object_store,
    )  # fmt: skip
    _, not_applicable = applicable(kinds, master)
    view_stream = sys.stderr if as_json else sys.stdout
    _stop_on_sigterm()
    try:
        with LiveView(view_stream, title=f"dstream drill · {pipeline} · seed {seed}") as view:
            result = run_chaos(config, run_dir, on_event=view.on_event)
    except KeyboardInterrupt:
        raise click.ClickException("drill interrupted; every process it started was stopped") from None
    except ChaosError as exc:
        first = " ".join(str(exc).split())[:300]
        raise click.ClickException(f"drill failed: {first} (logs in {run_dir})") from None
    extra: dict[str, Any] = {"not_applicable": not_applicable, "drill_dir": str(run_dir)}
    if object_store:
        extra["lease_timeout_s"] = LEASE_TIMEOUT_S
    report = write_drill_report(result, report_dir or run_dir, extra)
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        click.echo(_table(report))
        click.echo(f"report: {(report_dir or run_dir) / 'report.md'}")
    if report["verdict"] != "pass":
        raise SystemExit(1)
