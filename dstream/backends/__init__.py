"""Execution backends behind one contract (base.ExecutionBackend); `create_backend` picks one per master URL.

The Dask backend lives in its own module (a later issue) and is found by name, so adding it
touches no operator and no scheduler code: it must expose ``create(spec, conf) -> ExecutionBackend``.
"""

from __future__ import annotations

import importlib

from dstream.backends.base import ExecutionBackend, Task, TaskFailedError, TaskNotSerializableError
from dstream.backends.local import LocalBackend
from dstream.config import EngineConfig
from dstream.errors import DStreamValueError
from dstream.master import MasterSpec

__all__ = [
    "ExecutionBackend",
    "LocalBackend",
    "Task",
    "TaskFailedError",
    "TaskNotSerializableError",
    "create_backend",
]

_MODULE_BY_KIND = {"local-cluster": "dstream.backends.dask", "dask": "dstream.backends.dask"}


def create_backend(spec: MasterSpec, config: EngineConfig) -> ExecutionBackend:
    """Build the backend a parsed master URL asks for.

    Raises:
        DStreamValueError: the master needs a backend that is not installed in this build.
    """
    if spec.kind == "local":
        inline = spec.inline or config.local_inline
        return LocalBackend(spec.threads or 1, inline=inline)
    module_name = _MODULE_BY_KIND[spec.kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise DStreamValueError(
            f"master {spec.url!r} needs the Dask backend ({module_name}), which is not available yet"
        ) from exc
    backend: ExecutionBackend = module.create(spec, config)
    return backend
