"""Where the Dask backend's client comes from: an embedded `LocalCluster`, or a scheduler we join.

``local-cluster[N]`` starts N worker processes, each under a nanny, one task thread each, everything
bound to 127.0.0.1. The scheduler and the nannies run in the driver process, so the cluster's lifetime
is the driver's: `EmbeddedCluster.close()` stops the workers and waits for their processes to end, and
a driver that is SIGKILLed takes its cluster with it (each worker process watches a pipe from its nanny
and exits the moment it closes). The scheduler declares a worker that misses heartbeats for
``dstream.dask.workerTimeout`` dead (its nanny restarts it; its tasks run elsewhere), instead of
Dask's default of minutes.

The workers start in the background: the scheduler and the client are up when `start_embedded`
returns, and the N worker processes (each spawns a fresh interpreter that imports Dask and dstream, about
a second on this machine) come up while the driver builds its streaming context, recovers and waits for
its first batch time. `ClusterHandle.wait_for_workers` is called before anything needs a worker: it waits
once, bounded by ``WORKERS_START_TIMEOUT_S``, for all N to register, and fails at once if a worker
process failed to start (its nanny's status says so; Dask would only log it).

``dask://HOST:PORT`` only connects a client; closing it leaves the cluster running, as it was found.

Dask starts each worker process with multiprocessing's spawn, which imports the program's main module
again in it: a script that creates its Context at module level, outside ``if __name__ == "__main__":``,
would start a cluster from inside every worker while it starts, and the driver would wait for workers
that never come. `start_embedded` refuses to run during that import, with the error saying so (the
worker exits with it, and the driver's wait for its workers fails with it).

No dashboard is started unless ``dstream.dask.dashboard=true``; the dashboard needs bokeh, which is
optional, so its absence is a clear error rather than an import failure deep inside Dask. Without the
dashboard, the workers' statistical profiler is off too: it walks the task thread's stack every 10 ms
on the worker's event loop, for the dashboard's profile page alone, and each walk takes the GIL from
the task.

The embedded cluster's processes (the scheduler and the nannies in the driver, the workers) run Dask's
housekeeping at `HOUSEKEEPING_INTERVALS` rather than Dask's defaults, unless the driver's Dask
configuration sets them otherwise: an idle ``local-cluster[2]`` used 0.096 of a core with Dask's
defaults and 0.013 with these on this 2-core machine (most of it the 20 ms tick, a watchdog that only
logs an event loop blocked for longer than ``distributed.admin.tick.limit``, 3 s), and a word count at
300,000 lines/s 5 to 10 % less CPU per batch. Dead workers are still found by heartbeats (``worker_ttl``).
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import threading
import time
from typing import Any

import dask.config
from distributed import Client, LocalCluster, Nanny
from distributed.core import Status

from dstream.config import DASK_DASHBOARD_KEY, DaskConfig
from dstream.errors import DStreamStateError, DStreamValueError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
CONNECT_TIMEOUT_S = 30.0
WORKERS_START_TIMEOUT_S = 120.0  # a loaded 2-core machine spawning N interpreters at once
WORKERS_POLL_S = 0.5  # how often that wait looks for a worker process that failed to start
# Dask settings the embedded workers start with when there is no dashboard, over the driver's own.
NO_DASHBOARD_WORKER_CONFIG = {"distributed": {"worker": {"profile": {"enabled": False}}}}
HOUSEKEEPING_INTERVALS = {
    "distributed.admin.tick.interval": "1s",  # Dask's default 20 ms
    "distributed.admin.system-monitor.interval": "2s",  # 500 ms: psutil samples for dashboard, heartbeats
    "distributed.worker.memory.monitor-interval": "500ms",  # 100 ms: the pause and terminate thresholds
}


def housekeeping_intervals() -> dict[str, str]:
    """`HOUSEKEEPING_INTERVALS`, less those the driver's Dask configuration sets to other than Dask's
    default (what the user chose stays)."""
    defaults = dask.config.merge(*dask.config.defaults)
    return {
        key: value
        for key, value in HOUSEKEEPING_INTERVALS.items()
        if dask.config.get(key) == dask.config.get(key, config=defaults)
    }


class _HousekeptNanny(Nanny):
    """A nanny that reads `housekeeping` as it is made: the cluster makes its nannies on its event loop,
    after `start_embedded` has returned, so a configuration set around the call would be gone."""

    def __init__(self, *args: Any, housekeeping: dict[str, str], **kwargs: Any) -> None:
        with dask.config.set(housekeeping):
            super().__init__(*args, **kwargs)


class ClusterHandle:
    """A client and, for an embedded cluster, the cluster it owns."""

    def __init__(
        self, client: Any, cluster: Any | None, dashboard: bool = False, workers_expected: int = 0
    ) -> None:
        self.client = client
        self.cluster = cluster
        self._dashboard = dashboard
        self.workers_expected = workers_expected
        self._ready = threading.Event() if workers_expected else None

    def wait_for_workers(self) -> None:
        """Block until an embedded cluster's workers have all registered (once; a joined scheduler's
        workers are its own business, so this returns at once there).

        Raises:
            DStreamStateError: a worker process failed to start (its own error is on its standard error,
                which is the driver's), or they did not all register within ``WORKERS_START_TIMEOUT_S``.
        """
        if self._ready is None or self._ready.is_set():
            return
        deadline = time.monotonic() + WORKERS_START_TIMEOUT_S
        while True:
            try:
                self.client.wait_for_workers(self.workers_expected, timeout=WORKERS_POLL_S)
                break
            except TimeoutError as exc:
                failed = self._failed_workers()
                if failed:
                    raise DStreamStateError(
                        f"local-cluster[{self.workers_expected}]: {failed} worker process(es) failed to"
                        " start; their errors are printed above"
                    ) from exc
                if time.monotonic() >= deadline:
                    raise DStreamStateError(
                        f"local-cluster[{self.workers_expected}]: the workers did not all start within"
                        f" {WORKERS_START_TIMEOUT_S:.0f} s: {exc}"
                    ) from exc
        self._ready.set()

    def _failed_workers(self) -> int:
        """How many of the embedded cluster's nannies failed to start their worker process."""
        nannies = getattr(self.cluster, "workers", {})
        return sum(1 for n in list(nannies.values()) if getattr(n, "status", None) == Status.failed)

    @property
    def dashboard_link(self) -> str | None:
        """The embedded cluster's dashboard URL, if one was started."""
        if self.cluster is None or not self._dashboard:
            return None
        return str(self.cluster.dashboard_link)

    def close(self) -> None:
        """Close the client, then the embedded cluster (its workers' processes end before this returns)."""
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def start_embedded(workers: int, config: DaskConfig) -> ClusterHandle:
    """Start ``local-cluster[workers]`` and connect a client to it.

    Raises:
        DStreamValueError: the dashboard was asked for and bokeh is not installed.
        DStreamStateError: this process is a worker importing the main module (see the module docstring).
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise DStreamStateError(
            f"local-cluster[{workers}] was started while a new process imported the main module: Dask"
            " starts its workers with multiprocessing's spawn, which runs the main module again in each;"
            ' create the Context under `if __name__ == "__main__":`'
        )
    if config.dashboard and importlib.util.find_spec("bokeh") is None:
        raise DStreamValueError(
            f"{DASK_DASHBOARD_KEY}=true needs bokeh, which is not installed (pip install 'bokeh>=3.1'),"
            " or set it to false"
        )
    housekeeping = housekeeping_intervals()
    with dask.config.set(housekeeping):  # read by the scheduler, made in the constructor
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=0,  # scaled up below, without waiting: see the module docstring
            threads_per_worker=1,
            processes=True,
            worker_class=_HousekeptNanny,
            housekeeping=housekeeping,
            host=HOST,
            scheduler_port=0,
            # The scheduler always serves a few HTTP routes; on loopback, on any free port (Dask's
            # default tries 8787 and warns when it is taken), with the dashboard only when asked.
            scheduler_kwargs={
                "dashboard": config.dashboard,
                "dashboard_address": f"{HOST}:0",
                "worker_ttl": f"{config.worker_timeout_s}s",
            },
            # Each nanny hands its worker this configuration whole (its own merge is shallow).
            config=dask.config.merge(
                dask.config.config, {} if config.dashboard else NO_DASHBOARD_WORKER_CONFIG
            ),
        )
    try:
        cluster.scale(workers)  # type: ignore[no-untyped-call]
        client = Client(cluster, set_as_default=False, timeout=CONNECT_TIMEOUT_S)  # type: ignore[no-untyped-call]
    except BaseException:
        cluster.close()
        raise
    handle = ClusterHandle(client, cluster, config.dashboard, workers_expected=workers)
    if handle.dashboard_link is not None:
        print(f"dstream: Dask dashboard at {handle.dashboard_link}", flush=True)
        log.info("Dask dashboard of local-cluster[%d] at %s", workers, handle.dashboard_link)
    return handle


def join_scheduler(address: str) -> ClusterHandle:
    """Connect to an existing scheduler at ``tcp://host:port``.

    Raises:
        DStreamValueError: no scheduler answered at `address` within the connect timeout.
    """
    try:
        client = Client(address, set_as_default=False, timeout=CONNECT_TIMEOUT_S)  # type: ignore[no-untyped-call]
    except OSError as exc:
        raise DStreamValueError(
            f"no Dask scheduler answered at {address} within {CONNECT_TIMEOUT_S:.0f} s: {exc}"
        ) from exc
    return ClusterHandle(client, None)
