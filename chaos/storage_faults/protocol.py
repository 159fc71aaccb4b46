"""The ``faulty`` storage protocol: a URL that serves any other storage through a `FaultyStorage`.

URL syntax (fsspec's chaining): ``faulty::<inner URL>``, e.g. ``faulty::file:///data/ckpt``,
``faulty::s3://bucket/app``, ``faulty::memory://x``; the wrapped storage is whatever the registry
serves for the inner URL (local disk with its fast paths, an object store, another wrapper).
``faulty:///data/ckpt`` (unchained) wraps local disk.

The plan comes from the storage option ``plan`` (a version-1 plan document, as JSON text or as an
object), else from the environment variable ``DSTREAM_STORAGE_FAULTS`` (the JSON document, or
``@<path>`` of a file holding it), else there is none and nothing is injected. Storage options for
the inner storage go under its protocol's name, fsspec's rule for chains:
``{"plan": {...}, "s3": {"endpoint_url": ...}}``.

If ``DSTREAM_STORAGE_FAULTS_LOG`` names a file, every process appends one JSON line to it per injected
fault, before the fault takes effect: ``{"t": <unix seconds>, "pid", "fault", "rule", "call", "op",
"path"}`` (what a chaos run turns into history events; a line is one small append, so lines from
several processes do not interleave).

Every process finds the protocol without importing this package: pyproject.toml declares
`faulty_storage` as the entry point ``faulty`` of the group ``dstream.storage``, which wal's
registry loads the first time it meets the protocol. The plan is read once per process, when the
storage is first built (the registry caches it), so a child process takes it from its environment;
each process keeps its own call counts, so a restarted driver starts its plan afresh.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from chaos.errors import ChaosValueError
from chaos.storage_faults.faulty import FaultyStorage
from chaos.storage_faults.injector import FaultListener
from chaos.storage_faults.plan import Fault, StorageFaultPlan, parse_plan
from wal.storage import Storage, register_storage, storage_for
from wal.storage.registry import TARGET_STORAGE_OPTION

PROTOCOL = "faulty"
ENV_VAR = "DSTREAM_STORAGE_FAULTS"
LOG_ENV_VAR = "DSTREAM_STORAGE_FAULTS_LOG"
PLAN_OPTION = "plan"


def plan_from_environment(environ: Mapping[str, str] | None = None) -> StorageFaultPlan | None:
    """The plan `DSTREAM_STORAGE_FAULTS` holds (JSON, or ``@path``), or None if it is unset or empty.

    Raises:
        ChaosValueError: the value is not a valid plan, or names a file that cannot be read.
    """
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    if not value:
        return None
    if value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as f:
                value = f.read()
        except OSError as exc:
            raise ChaosValueError(f"{ENV_VAR}={value!r}: cannot read the plan file: {exc}") from exc
    try:
        return parse_plan(value)
    except ChaosValueError as exc:
        raise ChaosValueError(f"{ENV_VAR}: {exc}") from exc


def fault_logger(path: str) -> FaultListener:
    """A fault listener that appends one JSON line per fault to the file `path`."""

    def log_fault(fault: Fault, op: str, target: str) -> None:
        line = json.dumps(
            {"t": time.time(), "pid": os.getpid(), "fault": fault.kind, "rule": fault.rule}
            | {"call": fault.call, "op": op, "path": target}
        )
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    return log_fault


def faulty_storage(protocol: str, options: Mapping[str, Any]) -> Storage:
    """The `StorageFactory` of ``faulty`` (see the module docstring).

    Raises:
        ChaosValueError: an option other than ``plan`` (inner options go under the inner protocol's
            name), or an invalid plan.
    """
    unknown = set(options) - {PLAN_OPTION, TARGET_STORAGE_OPTION}
    if unknown:
        raise ChaosValueError(
            f"unknown storage options {sorted(unknown)} for {protocol!r}: expected {PLAN_OPTION!r} "
            "(options of the wrapped storage go under its protocol, e.g. {'s3': {...}})"
        )
    inner = options.get(TARGET_STORAGE_OPTION) or storage_for("file://")
    document = options.get(PLAN_OPTION)
    plan = parse_plan(document) if document is not None else plan_from_environment()
    log_path = os.environ.get(LOG_ENV_VAR)
    listener = fault_logger(log_path) if log_path else None
    return FaultyStorage(inner, plan or StorageFaultPlan(seed=0), on_fault=listener)


def register() -> None:
    """Register ``faulty`` in this process (where the package's entry points are not installed)."""
    register_storage(PROTOCOL, faulty_storage)
