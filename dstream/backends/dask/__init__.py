"""The Dask backend (masters ``local-cluster[N]`` and ``dask://HOST:PORT``), found by name.

`dstream.backends.create_backend` imports this package for a Dask master and calls `create`. The pieces:
`cluster` (an embedded LocalCluster, or a client of an existing scheduler), `backend` (tasks as futures,
results by value, lost tasks submitted again), `retries` (that decision, pure), `locality` (which workers
each task is submitted with, pure), `worker_plugin` (each worker's executor environment and the task entry
point), `broadcasts` (broadcast bytes published on the scheduler) and `reachability` (which storage URLs the
workers can reach).
"""

from __future__ import annotations

from dstream.backends.dask.backend import DaskBackend
from dstream.backends.dask.cluster import join_scheduler, start_embedded
from dstream.config import EngineConfig
from dstream.master import MasterSpec

__all__ = ["DaskBackend", "create"]


def create(spec: MasterSpec, config: EngineConfig) -> DaskBackend:
    """The backend for a parsed Dask master: an embedded cluster of N workers, or a joined scheduler."""
    if spec.kind == "local-cluster":
        assert spec.threads is not None
        handle = start_embedded(spec.threads, config.dask)
    else:
        assert spec.address is not None
        handle = join_scheduler(spec.address)
    try:
        return DaskBackend(handle, spec, config.dask)
    except BaseException:
        handle.close()
        raise
