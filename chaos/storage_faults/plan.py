"""The storage fault plan: a seeded, pure decision of which storage call fails, and how.

A plan is a seed and an ordered list of rules. `decide` is a pure state machine: given the plan, the
counts so far (`PlanState`), the operation and the path, it returns the fault to inject (or None) and
the new counts. No clock, no randomness but the seed: the same plan fed the same calls injects the
same faults, in every process and every run (calls made concurrently by several threads are fed in
the order they happen, which a run does not fix).

Format ``dstream-storage-faults``, version 1 (JSON; `to_json` / `parse_plan`)::

    {"format": "dstream-storage-faults", "version": 1, "seed": 7,
     "rules": [
       {"fault": "error", "probability": 0.05, "roles": ["wal"], "ops": ["append", "fsync"]},
       {"fault": "latency", "probability": 0.2, "latency_ms": 40},
       {"fault": "torn", "probability": 1.0, "after": 3, "count_max": 1, "then": "crash"}
     ]}

A rule's keys (only "fault" is required):

* ``fault``: the kind, one of `FAULT_KINDS`:
  ``error`` (OSError EIO before the call), ``slowdown`` (the S3 "SlowDown" 503 as s3fs raises it:
  OSError EBUSY, before the call), ``latency`` (sleep ``latency_ms``, then the call), ``torn`` (a
  prefix of the bytes of an append, a create-once or a publish's temporary file is written, then
  EIO, or the process dies as ``then`` says), ``enospc`` (OSError ENOSPC; an append or a
  create-once writes a prefix first, as a full disk does), ``lost_fsync`` (an fsync or directory
  fsync returns without syncing: what it should have made durable is lost at the next power cut),
  ``crash`` (the process is killed with SIGKILL before the call: what it wrote stays, as the
  kernel keeps it) and ``power_cut`` (the same, after discarding every write no real fsync made
  durable, as a power cut does);
* ``probability`` (0..1, default 1): chance that a matching call is hit;
* ``ops``: operation names (the `Storage` methods, e.g. "append", "publish", "read") or the groups
  "writes", "reads", "all"; default: every operation the kind applies to (`APPLIES_TO`). A rule
  only ever hits operations its kind applies to;
* ``roles``: path roles (`roles.ROLES`: wal, lease, checkpoint, sink, other); default: all;
* ``paths``: fnmatch globs over the storage path (e.g. ``"*/receivedData/*"``); default: all;
* ``after`` (default 0): the first ``after`` matching calls are spared (let a run make progress);
* ``count_max`` (default none): at most this many hits;
* ``latency_ms`` (``latency`` only, required): how long the call is delayed;
* ``then`` (``torn`` only, default "error"): "error", "crash" or "power_cut" after the prefix.

The decision for one call: every rule that matches the call (operation, role, path) counts it;
the first of them, in plan order, that fires injects its fault; a rule fires on its n-th matching
call if n > after, it has hit fewer than count_max times, and the seeded draw for (seed, rule, n)
is below its probability. The same draw gives torn and ENOSPC faults the fraction of the bytes
written before the failure. A plan of another format or version is refused, naming it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from chaos.errors import ChaosValueError
from chaos.storage_faults.roles import ROLES, Role, role_of

FORMAT = "dstream-storage-faults"
VERSION = 1

FaultKind = Literal["error", "slowdown", "latency", "torn", "enospc", "lost_fsync", "crash", "power_cut"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
Then = Literal["error", "crash", "power_cut"]

READ_OPS = frozenset(
    {"read", "read_range", "open_read", "size", "exists", "is_dir", "list_names", "list_sizes", "find"}
)
WRITE_OPS = frozenset(
    {
        "open_append",
        "append",
        "fsync",
        "truncate_open",
        "truncate",
        "fsync_dir",
        "create_once",
        "publish",
        "delete",
        "make_dirs",
        "rename_dir",
        "lock",
    }
)
ALL_OPS = READ_OPS | WRITE_OPS
"""Every operation a rule may hit. Releasing a handle (close_file, unlock) is never faulted."""

OP_GROUPS: Mapping[str, frozenset[str]] = {"reads": READ_OPS, "writes": WRITE_OPS, "all": ALL_OPS}

APPLIES_TO: Mapping[FaultKind, frozenset[str]] = {
    "error": ALL_OPS,
    "slowdown": ALL_OPS,
    "latency": ALL_OPS,
    "crash": ALL_OPS,
    "power_cut": ALL_OPS,
    "torn": frozenset({"append", "create_once", "publish"}),
    "enospc": frozenset({"open_append", "append", "fsync", "create_once", "publish", "make_dirs", "lock"}),
    "lost_fsync": frozenset({"fsync", "fsync_dir"}),
}
"""The operations each fault kind can hit."""

_RULE_KEYS = frozenset(
    {"fault", "probability", "ops", "roles", "paths", "after", "count_max", "latency_ms", "then"}
)


@dataclass(frozen=True)
class FaultRule:
    """One line of a plan (see the module docstring for each field's meaning)."""

    fault: FaultKind
    probability: float = 1.0
    ops: frozenset[str] = frozenset()  # resolved: never empty once built by `make_rule`
    roles: frozenset[Role] = frozenset(ROLES)
    paths: tuple[str, ...] = ()
    after: int = 0
    count_max: int | None = None
    latency_ms: int = 0
    then: Then = "error"

    def matches(self, op: str, path: str, role: Role) -> bool:
        """Whether the call (op on path, of role) is one this rule counts."""
        if op not in self.ops or role not in self.roles:
            return False
        return not self.paths or any(fnmatch.fnmatchcase(path, glob) for glob in self.paths)


@dataclass(frozen=True)
class StorageFaultPlan:
    """A seed and its ordered rules; build one with `make_plan` or `parse_plan`."""

    seed: int
    rules: tuple[FaultRule, ...] = ()


@dataclass(frozen=True)
class PlanState:
    """The counts `decide` keeps: per rule, calls matched and faults injected."""

    matched: tuple[int, ...] = ()
    injected: tuple[int, ...] = ()

    @staticmethod
    def start(plan: StorageFaultPlan) -> PlanState:
        zeros = (0,) * len(plan.rules)
        return PlanState(zeros, zeros)


@dataclass(frozen=True)
class Fault:
    """A decided fault.

    Attributes:
        kind: what to inject.
        rule: the index of the rule that fired, in the plan.
        call: which matching call of that rule this is (1-based).
        fraction: for torn and ENOSPC writes, the share of the bytes written first, in [0, 1).
        latency_s: for latency, the delay.
        then: for torn writes, what follows the prefix.
    """

    kind: FaultKind
    rule: int
    call: int
    fraction: float = 0.0
    latency_s: float = 0.0
    then: Then = "error"


def _draws(seed: int, rule: int, call: int) -> tuple[float, float]:
    """Two independent uniform numbers in [0, 1) for (seed, rule, call)."""
    digest = hashlib.blake2b(f"{seed}:{rule}:{call}".encode(), digest_size=16).digest()
    scale = float(1 << 64)
    return int.from_bytes(digest[:8], "big") / scale, int.from_bytes(digest[8:], "big") / scale


def decide(plan: StorageFaultPlan, state: PlanState, op: str, path: str) -> tuple[Fault | None, PlanState]:
    """The fault for one call of `op` on `path` (or None), and the counts after it. Pure."""
    role = role_of(path)
    matched = list(state.matched)
    injected = list(state.injected)
    chosen: Fault | None = None
    for index, rule in enumerate(plan.rules):
        if not rule.matches(op, path, role):
            continue
        matched[index] += 1
        if chosen is not None or matched[index] <= rule.after:
            continue
        if rule.count_max is not None and injected[index] >= rule.count_max:
            continue
        chance, fraction = _draws(plan.seed, index, matched[index])
        if chance < rule.probability:
            injected[index] += 1
            chosen = Fault(
                rule.fault,
                index,
                matched[index],
                fraction=fraction,
                latency_s=rule.latency_ms / 1000,
                then=rule.then,
            )
    return chosen, PlanState(tuple(matched), tuple(injected))


# -- building and parsing ------------------------------------------------------------------------


def _int(value: object, what: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ChaosValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return value


def _strings(value: object, what: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence | frozenset | set):
        raise ChaosValueError(f"{what} must be a list of strings, got {value!r}")
    items = list(value)
    if not all(isinstance(v, str) for v in items):
        raise ChaosValueError(f"{what} must be a list of strings, got {value!r}")
    return items


def _ops(kind: FaultKind, value: object, where: str) -> frozenset[str]:
    if value is None:
        return APPLIES_TO[kind]
    wanted: set[str] = set()
    for name in _strings(value, f"{where}: ops"):
        if name not in OP_GROUPS and name not in ALL_OPS:
            raise ChaosValueError(
                f"{where}: unknown operation {name!r}; expected one of {sorted(ALL_OPS)} "
                f"or a group {sorted(OP_GROUPS)}"
            )
        wanted |= OP_GROUPS.get(name, frozenset({name}))
    ops = frozenset(wanted) & APPLIES_TO[kind]
    if not ops:
        raise ChaosValueError(
            f"{where}: a {kind!r} fault cannot hit any of {sorted(wanted)}; "
            f"it applies to {sorted(APPLIES_TO[kind])}"
        )
    return ops


def _roles(value: object, where: str) -> frozenset[Role]:
    if value is None:
        return frozenset(ROLES)
    names = _strings(value, f"{where}: roles")
    for name in names:
        if name not in ROLES:
            raise ChaosValueError(f"{where}: unknown role {name!r}; expected one of {list(ROLES)}")
    return frozenset(r for r in ROLES if r in names)


def make_rule(spec: Mapping[str, Any], where: str = "rule") -> FaultRule:
    """A rule from its JSON object (see the module docstring).

    Raises:
        ChaosValueError: an unknown key, kind, operation or role, or a value out of range; the
            message names the rule, the value and what was expected.
    """
    if not isinstance(spec, Mapping):
        raise ChaosValueError(f"{where} must be an object, got {spec!r}")
    unknown = set(spec) - _RULE_KEYS
    if unknown:
        raise ChaosValueError(
            f"{where}: unknown keys {sorted(unknown)}; expected some of {sorted(_RULE_KEYS)}"
        )
    kind = spec.get("fault")
    if kind not in FAULT_KINDS:
        raise ChaosValueError(f"{where}: fault must be one of {list(FAULT_KINDS)}, got {kind!r}")
    probability = spec.get("probability", 1.0)
    if isinstance(probability, bool) or not isinstance(probability, int | float) or not 0 <= probability <= 1:
        raise ChaosValueError(f"{where}: probability must be a number in [0, 1], got {probability!r}")
    if kind == "latency" and "latency_ms" not in spec:
        raise ChaosValueError(f"{where}: a latency fault needs latency_ms (an int >= 0)")
    for key, only in (("latency_ms", "latency"), ("then", "torn")):
        if key in spec and kind != only:
            raise ChaosValueError(f"{where}: {key} applies to {only!r} faults only, not {kind!r}")
    then = spec.get("then", "error")
    if then not in get_args(Then):
        raise ChaosValueError(f"{where}: then must be one of {list(get_args(Then))}, got {then!r}")
    count_max = spec.get("count_max")
    return FaultRule(
        fault=kind,
        probability=float(probability),
        ops=_ops(kind, spec.get("ops"), where),
        roles=_roles(spec.get("roles"), where),
        paths=tuple(_strings(spec.get("paths", []), f"{where}: paths")),
        after=_int(spec.get("after", 0), f"{where}: after", 0),
        count_max=None if count_max is None else _int(count_max, f"{where}: count_max", 1),
        latency_ms=_int(spec.get("latency_ms", 0), f"{where}: latency_ms", 0),
        then=then,
    )


def make_plan(seed: int, rules: Sequence[Mapping[str, Any]]) -> StorageFaultPlan:
    """A plan from a seed and rules given as JSON objects.

    Raises:
        ChaosValueError: the seed is not an int, or a rule is invalid.
    """
    if isinstance(rules, str | bytes) or not isinstance(rules, Sequence):
        raise ChaosValueError(f"rules must be a list of objects, got {rules!r}")
    built = tuple(make_rule(spec, f"rule {i}") for i, spec in enumerate(rules))
    return StorageFaultPlan(_int(seed, "seed", -(1 << 63)), built)


def parse_plan(document: str | Mapping[str, Any]) -> StorageFaultPlan:
    """A plan from its versioned JSON document (text or already parsed).

    Raises:
        ChaosValueError: not JSON, another format or version, or an invalid seed or rule.
    """
    if isinstance(document, str):
        text = document
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ChaosValueError(f"a storage fault plan must be JSON: {exc}; got {text[:80]!r}") from exc
    if not isinstance(document, Mapping):
        raise ChaosValueError(f"a storage fault plan must be a JSON object, got {document!r}")
    if document.get("format") != FORMAT:
        raise ChaosValueError(
            f"not a storage fault plan: format {document.get('format')!r}, expected {FORMAT!r}"
        )
    if document.get("version") != VERSION:
        raise ChaosValueError(
            f"storage fault plan version {document.get('version')!r} is not supported; "
            f"this version reads version {VERSION}"
        )
    unknown = set(document) - {"format", "version", "seed", "rules"}
    if unknown:
        raise ChaosValueError(f"storage fault plan: unknown keys {sorted(unknown)}")
    return make_plan(document.get("seed", 0), document.get("rules", []))


def _rule_json(rule: FaultRule) -> dict[str, Any]:
    out: dict[str, Any] = {"fault": rule.fault, "probability": rule.probability, "ops": sorted(rule.ops)}
    if rule.roles != frozenset(ROLES):
        out["roles"] = [r for r in ROLES if r in rule.roles]
    if rule.paths:
        out["paths"] = list(rule.paths)
    if rule.after:
        out["after"] = rule.after
    if rule.count_max is not None:
        out["count_max"] = rule.count_max
    if rule.fault == "latency":
        out["latency_ms"] = rule.latency_ms
    if rule.fault == "torn":
        out["then"] = rule.then
    return out


def to_json(plan: StorageFaultPlan) -> str:
    """The plan's version-1 JSON document (`parse_plan` reads it back to an equal plan)."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "seed": plan.seed,
        "rules": [_rule_json(rule) for rule in plan.rules],
    }
    return json.dumps(document, sort_keys=True)
