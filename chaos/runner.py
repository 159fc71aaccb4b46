"""One chaos run, as a library call: start the driver, drive the workload, inject the schedule, drain, check.

    result = run_chaos(RunConfig(pipeline="stateful", faults=("driver-kill", "crashpoint"), seed=7),
                       Path("runs/1"), on_event=print)
    result.valid, result.verdict, result.history_path

Phases, every one bounded in time:
1. start: the run directory gets `spec.json` (the driver's `RunSpec`) and the history's main file;
   the first driver starts (`chaos.nemesis.drivers`) and the producers (`chaos.workload`) start sending.
2. faults: for each step of the seeded schedule (`chaos.nemesis.schedule`), wait until a batch
   completed since the previous fault ended (progress between faults), stay quiet for the step's gap,
   then inject it (`chaos.nemesis.inject`). The run's `time_limit_s` cuts the schedule short if needed.
3. drain: the producers stop; the runner waits (bounded) until every acknowledged record is in the
   committed output, records "drained", and stops the driver gracefully.
4. check: the drivers' history parts are merged with the main file into `history.jsonl`, the committed
   output is read (`chaos.committed_output`), and the checker's verdict goes to `verdict.json`.

Whatever happens (an error, Ctrl-C), every driver child is killed and reaped and every producer is
stopped before `run_chaos` returns or raises. `on_event` receives every history event as it is
recorded (the drill's live view); it runs on the recording thread and must be quick.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.checker import check
from chaos.committed_output import read_committed_output
from chaos.errors import ChaosError, ChaosValueError
from chaos.history import HistoryWriter, merge_histories, read_history, run_header
from chaos.nemesis.drivers import Drivers
from chaos.nemesis.inject import Nemesis
from chaos.nemesis.schedule import REACHABLE_CRASH_POINTS, Step, applicable, plan
from chaos.spec import RunSpec
from chaos.storage_faults import ENV_VAR as STORAGE_FAULTS_ENV
from chaos.workload import FileProducer, Producer, PushProducer, WorkloadSpec, start_producers, stop_producers

Event = dict[str, Any]
HISTORY_FILE = "history.jsonl"
VERDICT_FILE = "verdict.json"
MAIN_FILE = "runner.jsonl"
POLL_S = 0.5


@dataclass(frozen=True)
class RunConfig:
    """What one run does. Times in seconds.

    Attributes:
        pipeline, sink, source, master, batch_ms: the pipeline under test (`chaos.spec.RunSpec`).
        seed: seeds the schedule and the workload: the same seed gives the same run plan.
        faults: fault kinds to draw from; kinds the master cannot inject are reported, not run.
        faults_n: steps in the schedule.
        schedule: an explicit schedule (overrides seed, faults and faults_n for the faults).
        crash_points: the crash points the "crashpoint" kind cycles through.
        receiver_wal: False runs the mutant without the receiver WAL, which the checker must catch.
        workload: the producers' counts and rates.
        warmup_s: quiet time with traffic before the first fault.
        drain_timeout_s: bound on waiting for every acknowledged record to be committed.
        recovery_bound_s: liveness bound passed to the checker.
        time_limit_s: bound on the whole run; the schedule is cut short to respect it.
        crash_wait_s: how long an armed crash point may take to be hit before it is disarmed.
        setup: "module:function", a user's setup factory (see `RunSpec.setup`); None: built-in pipeline.
        python_path: directories the driver children add to sys.path to import `setup`.
        checkpoint: the checkpoint directory's URL (any storage URL); None: `checkpoint/` in the run dir.
        conf: extra engine configuration for the drivers (`RunSpec.conf`), e.g. a short lease timeout.
        checkpoint_options: fsspec options for `checkpoint` (`RunSpec.checkpoint_options`).
    """

    pipeline: str = "stateful"
    sink: str = "transactional"
    source: str = "push"
    master: str = "local[2]"
    batch_ms: int = 500
    seed: int = 0
    faults: tuple[str, ...] = ("driver-kill", "receiver-crash", "crashpoint")
    faults_n: int = 3
    schedule: tuple[Step, ...] | None = None
    crash_points: tuple[str, ...] = REACHABLE_CRASH_POINTS
    receiver_wal: bool = True
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    warmup_s: float = 1.5
    drain_timeout_s: float = 60.0
    recovery_bound_s: float = 60.0
    time_limit_s: float = 600.0
    crash_wait_s: float = 10.0
    setup: str | None = None
    python_path: tuple[str, ...] = ()
    checkpoint: str | None = None
    conf: dict[str, str] = field(default_factory=dict)
    checkpoint_options: dict[str, Any] = field(default_factory=dict)

    def steps(self) -> tuple[list[Step], list[str]]:
        """(the schedule to run, the kinds left out as not applicable on this master)."""
        object_store = is_object_store_url(self.checkpoint)
        if self.schedule is not None:
            usable, skipped = applicable(
                [s.kind for s in self.schedule], self.master, object_store=object_store
            )
            return [s for s in self.schedule if s.kind in usable], sorted(set(skipped))
        usable, skipped = applicable(self.faults, self.master, object_store=object_store)
        return plan(
            self.seed, usable, self.faults_n if usable else 0, crash_points=self.crash_points
        ), skipped


def is_object_store_url(url: str | None) -> bool:
    """Whether a checkpoint URL names an object store, where the driver lease expires (a local path,
    file:// and memory:// do not; a `faulty::` wrapper is looked through)."""
    if url is None:
        return False
    inner = url.split("::")[-1]
    scheme = inner.split("://")[0] if "://" in inner else "file"
    return scheme not in ("file", "local", "memory")


@dataclass(frozen=True)
class RunResult:
    """What a run produced."""

    valid: bool
    verdict: dict[str, Any]
    run_dir: Path
    history_path: Path
    spec: RunSpec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def receiver_resolver(drivers: Drivers, name: str, port: int) -> Callable[[], tuple[str, int]]:
    """Where stream `name`'s push receiver listens: the newest address the drivers reported for it
    ("receivers" telemetry), else 127.0.0.1 at `port` (the port it was made with).

    A receiver moved to another worker is found at its new address once its driver reports it; while
    it is not placed the newest known address is returned, and the client's retries ask again.
    """

    def placed(event: Event) -> bool:
        return event.get("f") == "receivers" and bool((event.get("addresses") or {}).get(name))

    def resolve() -> tuple[str, int]:
        report = drivers.last(placed)
        if report is None:
            return ("127.0.0.1", port)
        host, bound = report["addresses"][name]
        return (str(host), int(bound))

    return resolve


def storage_env(plan: dict[str, Any]) -> dict[str, str]:
    """The environment that arms a storage-fault plan in a driver child."""
    return {STORAGE_FAULTS_ENV: json.dumps(plan)}


def make_spec(config: RunConfig, run_dir: Path, t0: float, kinds: Sequence[str]) -> RunSpec:
    """The driver's spec. With storage faults in the schedule, the checkpoint directory and a file
    sink's output are `faulty::` URLs (nothing is injected until a driver's environment has a plan)."""
    batch = config.batch_ms
    faulty = "faulty::file://" if "storage" in kinds else ""
    file_sink = config.sink != "sqlite"
    windowed = config.pipeline == "windowed"
    streams = ("a", "b") if config.pipeline == "join" else ("a",)
    return RunSpec(
        pipeline=config.pipeline, sink=config.sink, source=config.source, master=config.master,
        checkpoint=_faulty_url(config.checkpoint or str(run_dir / "checkpoint"), faulty),
        output=f"{faulty if file_sink else ''}{run_dir / 'output'}",
        input_dir=str(run_dir / "input"),
        ports={} if config.source == "files" else {s: free_port() for s in streams},
        batch_ms=batch, window_ms=3 * batch if windowed else None, slide_ms=batch if windowed else None,
        checkpoint_interval_ms=max(1000, 2 * batch), receiver_wal=config.receiver_wal, t0_monotonic=t0,
        setup=config.setup, python_path=list(config.python_path), conf=dict(config.conf),
        checkpoint_options=dict(config.checkpoint_options),
    )  # fmt: skip


def _faulty_url(url: str, faulty: str) -> str:
    """`url` wrapped in the fault-injecting storage when `faulty` is set (a local path becomes file://)."""
    if not faulty:
        return url
    return f"faulty::{url}" if "://" in url else f"{faulty}{url}"


def header_run(spec: RunSpec, kinds: Sequence[str], recovery_bound_s: float) -> dict[str, Any]:
    return {
        "pipeline": spec.pipeline, "sink": spec.sink, "master": spec.master, "checkpoint": spec.checkpoint,
        "batch_ms": spec.batch_ms, "window_ms": spec.window_ms, "slide_ms": spec.slide_ms,
        "faults": sorted(set(kinds)), "recovery_bound_s": recovery_bound_s,
    }  # fmt: skip


class _Run:
    """The state of one run between its phases (see the module docstring)."""

    def __init__(self, config: RunConfig, run_dir: Path, on_event: Callable[[Event], None] | None) -> None:
        self.config, self.run_dir, self.on_event = config, run_dir, on_event
        self.t0 = time.monotonic()
        self.deadline = self.t0 + config.time_limit_s
        self.steps, self.skipped = config.steps()
        kinds = [s.kind for s in self.steps]
        self.spec = make_spec(config, run_dir, self.t0, kinds)
        self.spec.save(run_dir / "spec.json")
        for name in ("output", "input"):
            (run_dir / name).mkdir()
        header = run_header(config.seed, header_run(self.spec, kinds, config.recovery_bound_s))
        self.history = HistoryWriter(run_dir / MAIN_FILE, header, t0=self.t0)
        self.drivers = Drivers(run_dir, on_event)
        self.producers: list[Producer] = []
        self.fault_details: list[dict[str, Any]] = []

    def record(self, proc: str, f: str, type: str = "info", **fields: Any) -> Event:
        event = self.history.record(proc, f, type, **fields)
        if self.on_event is not None:
            self.on_event(event)
        return event

    def start(self) -> None:
        driver = self.drivers.start(timeout_s=60.0)
        if not driver.started.is_set():
            raise ChaosError(f"the first driver did not start: {self._log_tail(driver.index)}")
        w, seed = self.config.workload, self.config.seed
        if self.spec.source == "files":
            self.producers = [
                FileProducer(i, self.spec.input_dir, w, seed, self.record) for i in range(w.producers_n)
            ]
        else:
            resolvers = {
                name: receiver_resolver(self.drivers, name, port) for name, port in self.spec.ports.items()
            }
            self.producers = [
                PushProducer(i, self.spec.ports, w, seed, self.record, resolvers)
                for i in range(w.producers_n)
            ]
        start_producers(self.producers)

    def _log_tail(self, index: int) -> str:
        path = self.run_dir / f"driver-{index}.log"
        return path.read_text(errors="replace")[-1500:] if path.exists() else "(no log)"

    def wait_progress(self, mark: int, timeout_s: float) -> bool:
        """Wait for a batch that completed after event position `mark`; whether one did in time."""
        return self.drivers.wait_for(
            lambda events: any(e.get("f") == "batch-completed" for e in events[mark:]), timeout_s
        )

    def faults(self) -> None:
        nemesis = Nemesis(
            self.drivers, self.record, random.Random(f"{self.config.seed}-nemesis"),
            storage_env=storage_env, crash_wait_s=self.config.crash_wait_s,
        )  # fmt: skip
        quiet = threading.Event()
        self.wait_progress(0, 30.0)
        quiet.wait(self.config.warmup_s)
        for step in self.steps:
            reserve_s = self.config.drain_timeout_s + 30.0
            if time.monotonic() + step.gap_s + reserve_s > self.deadline:
                self.record("runner", "schedule-cut", reason="time limit", left=len(self.steps))
                break
            mark = self.drivers.mark()
            self.wait_progress(mark, 30.0)  # the previous fault's recovery made progress
            quiet.wait(step.gap_s)
            self.fault_details.append({"fault": step.kind, **nemesis.inject(step)})
        nemesis.ensure_current()

    def drain(self) -> bool:
        still = stop_producers(self.producers, self.config.workload.send_timeout_s + 10.0)
        if still:
            raise ChaosError(f"producers {still} did not stop")
        acked = {e["rid"] for e in read_history(self.run_dir / MAIN_FILE).events if e.get("type") == "ok"}
        deadline = time.monotonic() + self.config.drain_timeout_s
        complete = False
        while time.monotonic() < deadline:
            if self.drivers.current is None or not self.drivers.current.alive():
                Nemesis(self.drivers, self.record, random.Random(0)).ensure_current()
            committed = read_committed_output(self.spec)
            seen = {rid for b in committed.batches.values() for rid in b.consumed}
            if acked <= seen | set(committed.quarantined):
                complete = True
                break
            threading.Event().wait(POLL_S)  # polling another process's output: there is no event
        self.record("runner", "drained", complete=complete)
        if self.drivers.current is not None:
            self.drivers.stop(self.drivers.current, 60.0)
        return complete

    def check(self) -> dict[str, Any]:
        self.history.close()
        history_path = self.run_dir / HISTORY_FILE
        history = merge_histories(self.run_dir / MAIN_FILE, self.drivers.part_files(), history_path)
        committed = read_committed_output(self.spec)
        verdict = check(
            history.events, history.header, committed, recovery_bound_s=self.config.recovery_bound_s
        )
        return self._with_run_findings(verdict)

    def _with_run_findings(self, verdict: dict[str, Any]) -> dict[str, Any]:
        """Add what only the runner can see: a second driver that was not refused, a producer's crash."""
        not_refused = [d for d in self.fault_details if d["fault"] == "split-brain" and not d.get("refused")]
        crashed = [f"{p.name}: {p.error!r}" for p in self.producers if p.error is not None]
        for kind, items in (("split_brain_not_refused", not_refused), ("producer_crashed", crashed)):
            if items:
                verdict[kind] = {"count": len(items), "examples": items[:8]}
                verdict["error_types"] = [*verdict.get("error_types", []), kind]
                verdict["valid"] = False
        verdict["run"] = {
            "seed": self.config.seed, "pipeline": self.spec.pipeline, "sink": self.spec.sink,
            "faults_injected": len(self.fault_details), "not_applicable": self.skipped,
            "faults": self.fault_details,
        }  # fmt: skip
        return verdict

    def close(self) -> None:
        stop_producers(self.producers, self.config.workload.send_timeout_s + 10.0)
        self.drivers.reap_all()
        self.history.close()


def run_chaos(config: RunConfig, run_dir: Path, on_event: Callable[[Event], None] | None = None) -> RunResult:
    """Run one chaos run in `run_dir` (created; must not exist or be empty) and check it.

    Raises:
        ChaosValueError: a bad configuration or a non-empty `run_dir`.
        ChaosError: the run could not be carried out (the first driver did not start, ...). A run
            that found the engine wrong does not raise: its verdict says so.
    """
    run_dir = Path(run_dir).absolute()
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ChaosValueError(f"run directory {str(run_dir)!r} is not empty; give a new one")
    run_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(config, run_dir, on_event)
    try:
        run.start()
        run.faults()
        run.drain()
    finally:
        run.close()
    verdict = run.check()
    (run_dir / VERDICT_FILE).write_text(json.dumps(verdict, indent=1, sort_keys=True), encoding="utf-8")
    return RunResult(bool(verdict["valid"]), verdict, run_dir, run_dir / HISTORY_FILE, run.spec)


def recheck(history_path: Path, output_url: str, *, recovery_bound_s: float | None = None) -> dict[str, Any]:
    """Check a saved run again offline: its history and the committed output at `output_url`."""
    history = read_history(history_path)
    run = history.run
    spec = RunSpec(
        pipeline=run["pipeline"], sink=run["sink"], master=run["master"], checkpoint=run["checkpoint"],
        output=output_url, batch_ms=run["batch_ms"], window_ms=run["window_ms"], slide_ms=run["slide_ms"],
    )  # fmt: skip
    bound = run["recovery_bound_s"] if recovery_bound_s is None else recovery_bound_s
    return check(history.events, history.header, read_committed_output(spec), recovery_bound_s=bound)
