"""Storage faults for chaos runs: a fault-injecting wrapper of the engine's one storage seam.

`plan` holds the seeded, pure decision (which call fails, how) and its versioned JSON format;
`roles` tells what a path is for (WAL, lease, checkpoint, sink); `faulty.FaultyStorage` wraps any
`wal.storage.Storage` and acts the faults out, with a model of what fsync made durable so that a
simulated crash loses exactly what a power cut would; `protocol` serves it as the URL protocol
``faulty::<inner URL>`` in every process (entry point group ``dstream.storage``).
"""

from chaos.storage_faults.faulty import CrashReport, FaultyStorage
from chaos.storage_faults.plan import (
    FAULT_KINDS,
    Fault,
    FaultRule,
    PlanState,
    StorageFaultPlan,
    decide,
    make_plan,
    parse_plan,
    to_json,
)
from chaos.storage_faults.protocol import (
    ENV_VAR,
    LOG_ENV_VAR,
    PROTOCOL,
    fault_logger,
    faulty_storage,
    plan_from_environment,
)
from chaos.storage_faults.roles import ROLES, role_of

__all__ = [
    "ENV_VAR",
    "FAULT_KINDS",
    "LOG_ENV_VAR",
    "PROTOCOL",
    "ROLES",
    "CrashReport",
    "Fault",
    "FaultRule",
    "FaultyStorage",
    "PlanState",
    "StorageFaultPlan",
    "decide",
    "fault_logger",
    "faulty_storage",
    "make_plan",
    "parse_plan",
    "plan_from_environment",
    "role_of",
    "to_json",
]
