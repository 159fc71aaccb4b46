"""A chaos run's driver: `python -m chaos.driver_process RUN_DIR INDEX`.

Reads `RUN_DIR/spec.json`, runs its pipeline with `StreamingContext.getOrCreate` on the spec's
checkpoint directory (so a restarted driver recovers), and records its telemetry in its part of the
history, `RUN_DIR/driver-INDEX.jsonl`, echoing every event on stdout for the runner (`chaos.telemetry`).

What the runner can do to it, all from outside the engine:
- SIGKILL, SIGSTOP/SIGCONT (driver kills, pauses);
- `DSTREAM_CRASH_POINT` in its environment (it kills itself at that crash point);
- SIGUSR1: every receiver is told to restart (`Receiver.restart`, the path a receiver takes when its
  source fails: onStop closes the listener and every producer connection, onStart binds again), which
  is the receiver crash; on a Dask master the driver's copy of each receiver passes the restart to the
  receiver on its worker;
- on a master with worker processes (`local-cluster[N]`) it reports their pids ("workers", by
  address) after it started and again whenever they change, so the nemesis can SIGKILL one; with
  "receiver-started" telemetry naming the worker a receiver started on, the nemesis finds the worker
  process hosting a receiver (the receiver-worker-kill fault);
- it reports where each push receiver listens ("receivers": "addresses", the workload's stream name
  -> [host, port], or null while the receiver is not placed), after it started and whenever that
  changes (`PushInputDStream.address()`, public API), so the producers follow a receiver that moved
  to another worker (`chaos.runner`'s resolvers);
- closing its stdin: it stops gracefully and exits 0. A runner that dies closes it too, so a driver
  never outlives its run.

Like an application whose main thread sits in `awaitTermination`, it stops on its own when the engine
reports that this driver was fenced (another driver took the checkpoint directory's lease over: the
zombie-pause fault): it records "driver-fenced", stops the context without waiting for its batches,
and exits 3. Other errors that `awaitTermination` raises (a failed batch) are left to the engine's
failed-batch policy, as before; the driver keeps running.

Exit status: 0 after a graceful stop, 2 when the driver could not start (e.g. another driver holds the
checkpoint directory's lease: the split-brain fault expects that), with the error on stderr, 3 when it
was fenced.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos.history import HistoryWriter, part_header
from chaos.pipelines import make_setup
from chaos.spec import RunSpec
from chaos.telemetry import TelemetryListener, encode_line
from checkpoint.errors import DriverLeaseError
from dstream import StreamingContext

SPEC_FILE = "spec.json"
EXIT_NOT_STARTED = 2
EXIT_FENCED = 3
WORKERS_POLL_S = 0.5
FENCE_POLL_S = 0.1


class Telemetry:
    """Records an event in this driver's history part and echoes it to the runner."""

    def __init__(self, run_dir: Path, index: int, t0: float) -> None:
        self.proc = f"driver-{index}"
        self._writer = HistoryWriter(run_dir / f"{self.proc}.jsonl", part_header(self.proc), t0=t0)
        self._lock = threading.Lock()

    def __call__(self, f: str, **fields: Any) -> None:
        event = self._writer.record(self.proc, f, "info", pid=os.getpid(), **fields)
        with self._lock:
            print(encode_line(event), flush=True)

    def close(self) -> None:
        self._writer.close()


def restart_receivers(ssc: StreamingContext) -> int:
    """Tell every receiver of `ssc` to restart; returns how many were told."""
    told = 0
    for stream in ssc.graph.input_streams:
        get_receiver = getattr(stream, "getReceiver", None)
        if get_receiver is not None:
            get_receiver().restart("chaos: injected receiver crash")
            told += 1
    return told


def worker_pids(ssc: StreamingContext) -> dict[str, int] | None:
    """The pid of every worker process of `ssc`'s master by address; None if they cannot be asked now
    (a worker is dying)."""
    try:
        pids: dict[str, int] = ssc.sparkContext.worker_processes()
    except Exception:  # a worker that died while it was asked: the next poll sees the new set
        return None
    return pids


def receiver_addresses(ssc: StreamingContext, ports: dict[str, int]) -> dict[str, list[Any] | None]:
    """Where each push receiver of `ssc` listens now, by the workload's stream name: [host, port], or
    None while it is not placed (moving to another worker).

    A stream is named by the port it was made with (`spec.ports`); push streams on other ports (a
    user's own) are reported under "port-<port>".
    """
    names = {port: name for name, port in ports.items()}
    found: dict[str, list[Any] | None] = {}
    for stream in ssc.graph.input_streams:
        address = getattr(stream, "address", None)
        port = getattr(stream, "port", None)
        if address is None or not isinstance(port, int):
            continue  # not a push stream
        try:
            host, bound = address(0.0)  # no wait: a receiver being moved is reported as not placed
            where: list[Any] | None = [host, bound]
        except Exception:
            where = None
        found[names.get(port, f"port-{port}")] = where
    return found


def watch_cluster(
    ssc: StreamingContext, ports: dict[str, int], emit: Telemetry, stopping: threading.Event
) -> None:
    """Report the worker pids ("workers") and the push receivers' addresses ("receivers") now and
    whenever they change, until `stopping` is set.

    Polls every WORKERS_POLL_S: Dask tells the client of no worker change without a scheduler
    plugin, and a poll is enough for the nemesis and the producers, which wait on these reports with a
    bound. A master without worker processes reports no workers.
    """
    last_pids: dict[str, int] | None = None
    last_addresses: dict[str, list[Any] | None] | None = None
    has_workers = True
    while True:
        pids = worker_pids(ssc) if has_workers else None
        if pids is not None and pids != last_pids:
            if not pids and last_pids is None:
                has_workers = False  # local[*]: tasks run in this process
            else:
                emit("workers", pids=pids)
                last_pids = pids
        addresses = receiver_addresses(ssc, ports)
        if addresses and addresses != last_addresses:
            emit("receivers", addresses=addresses)
            last_addresses = addresses
        if stopping.wait(WORKERS_POLL_S):
            return


def was_fenced(error: BaseException) -> bool:
    """Whether an error `awaitTermination` raised says this driver lost its lease."""
    cause: BaseException | None = error
    for _ in range(8):  # the cause chain is short; bound it anyway
        if cause is None:
            return False
        if isinstance(cause, DriverLeaseError):
            return True
        cause = cause.__cause__
    return False


def wait_stop_or_fence(ssc: StreamingContext) -> DriverLeaseError | Exception | None:
    """Wait until the runner closes stdin (None) or the engine reports this driver fenced (the error)."""
    closed = threading.Event()

    def read_stdin() -> None:
        sys.stdin.read()
        closed.set()

    threading.Thread(target=read_stdin, name="chaos-stdin", daemon=True).start()
    while not closed.is_set():
        try:
            if ssc.awaitTerminationOrTimeout(FENCE_POLL_S):
                closed.wait()  # the context stopped on its own: still the runner says when to exit
        except Exception as exc:  # the engine's error for awaitTermination: only a fence stops us
            if was_fenced(exc):
                return exc
            closed.wait(FENCE_POLL_S)
    return None


def load_setup(spec: RunSpec) -> Callable[[], StreamingContext]:
    """The setup function: the built-in pipeline's, or the user's factory named by `spec.setup`."""
    if spec.setup is None:
        return make_setup(spec)
    sys.path[:0] = [p for p in spec.python_path if p not in sys.path]
    module_name, _, function = spec.setup.partition(":")
    factory = getattr(importlib.import_module(module_name), function)
    setup: Callable[[], StreamingContext] = factory(spec)
    return setup


def run(run_dir: Path, index: int) -> int:
    spec = RunSpec.load(run_dir / SPEC_FILE)
    emit = Telemetry(run_dir, index, spec.t0_monotonic)
    running: list[StreamingContext] = []

    def on_usr1(signum: int, frame: Any) -> None:
        # Installed before the context exists, so an early signal is not the default (fatal) action.
        emit("receiver-restart-requested", receivers=restart_receivers(running[0]) if running else 0)

    signal.signal(signal.SIGUSR1, on_usr1)
    try:
        if index > 0:
            emit("recovery-started")
        try:
            ssc = StreamingContext.getOrCreate(
                spec.checkpoint, load_setup(spec), storage_options=spec.checkpoint_options
            )
            ssc.addStreamingListener(TelemetryListener(emit))
            ssc.start()
        except Exception as exc:
            emit("driver-refused", error=f"{type(exc).__name__}: {exc}"[:500])
            print(f"driver {index} could not start: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_NOT_STARTED
        running.append(ssc)
        if ssc.recovered is not None:
            emit("recovery-done")
        emit("driver-started")
        stopping = threading.Event()
        watcher = threading.Thread(target=watch_cluster, args=(ssc, spec.ports, emit, stopping), daemon=True)
        watcher.start()
        fenced = wait_stop_or_fence(ssc)  # until the runner closes stdin (or dies), or a fence
        stopping.set()
        watcher.join(WORKERS_POLL_S * 10)
        if fenced is not None:
            emit("driver-fenced", error=f"{type(fenced).__name__}: {fenced}"[:500])
            ssc.stop(stopSparkContext=True, stopGraceFully=False)
            emit("driver-stopped", fenced=True)
            return EXIT_FENCED
        ssc.stop(stopSparkContext=True, stopGraceFully=True)
        emit("driver-stopped")
        return 0
    finally:
        emit.close()


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), int(sys.argv[2])))
