"""What runs inside each Dask worker: the plugin holding its `ExecutorEnv`, and the task entry point.

One `ExecutorPlugin` is registered per backend (per driver Context) under a name unique to it, so two
drivers sharing a scheduler (``dask://``) never share an environment. Dask installs the plugin on
every worker, including workers that join later (a nanny's replacement for a dead one); `setup` gives
the worker an `ExecutorEnv` named by the worker's address, on the worker's block store (the block
plugin of dstream.backends.dask_blocks, registered before this one), whose broadcast registry fetches missing
broadcasts from the scheduler (`broadcasts.py`). `teardown` (the driver stopped, or the worker is
closing) closes the environment. The plugin carries the driver's `PROTOCOL_VERSION`
(dstream.backends.dask_blocks), and `setup` refuses it on a worker of another version: registering it
then raises that error in the driver, and a task sent to a worker that joined later and refused it
fails with the same error.

`run_task` is the function every submitted future calls: it finds this backend's plugin on the
worker it runs on and runs the serialized task with the environment current, exactly as the local
backend's thread does.
"""

from __future__ import annotations

from typing import Any

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from dstream.backends.dask.broadcasts import scheduler_fetcher
from dstream.backends.dask_blocks import PROTOCOL_VERSION, worker_block_manager
from dstream.backends.executor_env import ExecutorEnv, running_in
from dstream.backends.serialization import SerializedTask, run_serialized
from dstream.broadcast import registry_of
from dstream.errors import DStreamStateError


class ExecutorPlugin(WorkerPlugin):
    """Gives a worker the executor environment of one driver.

    Args:
        name: the plugin's registration name (also the namespace of the driver's broadcasts).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.protocol = PROTOCOL_VERSION  # the driver's, compared with the worker's own in `setup`
        self.env: ExecutorEnv | None = None
        self.refused: str | None = None  # why `setup` refused the driver on this worker

    def setup(self, worker: Any) -> None:
        driver = getattr(self, "protocol", 0)  # 0: a driver from before the protocol had versions
        if driver != PROTOCOL_VERSION:
            self.refused = (
                f"worker {worker.address} speaks dstream's driver-worker protocol version {PROTOCOL_VERSION}"
                f" and the driver version {driver}: driver and workers must run the same dstream"
                " (install the driver's version on the workers)"
            )
            raise DStreamStateError(self.refused)
        self.env = ExecutorEnv(worker.address, worker_block_manager(worker))
        registry_of(self.env).set_fetcher(scheduler_fetcher(worker, self.name))

    def teardown(self, worker: Any) -> None:
        env, self.env = self.env, None
        if env is not None:
            env.close()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "env": None}  # the name and the protocol travel, no environment


def run_task(plugin_name: str, serialized: SerializedTask) -> tuple[bool, bytes]:
    """Worker side of one future: run the task in this worker's environment of the driver's plugin."""
    worker = get_worker()
    plugin = worker.plugins.get(plugin_name)
    env = getattr(plugin, "env", None)
    refused = getattr(plugin, "refused", None)
    if refused is not None:  # a worker that joined after the registration: its error was only logged
        raise DStreamStateError(refused)
    if env is None:
        raise DStreamStateError(
            f"worker {worker.address} has no dstream executor plugin {plugin_name!r}: the driver that"
            " submitted this task has stopped, or the worker joined before the plugin was installed"
        )
    with running_in(env):
        return run_serialized(serialized)
