"""Faults, recovery time and liveness, from the history's nemesis and telemetry events (pure).

A fault is a "fault-start" paired with the next "fault-end" of the same (fault, target). Its recovery
time is the first healthy "batch-completed" event after its "fault-end", minus its "fault-start" time
(null if none follows). Healthy: none of the batch's output operations failed ("failed" absent or 0);
a batch whose sink commit raised (a fenced zombie's, a driver under storage faults) completes too,
but proves nothing about the pipeline's health. Liveness fails, one finding each, when:

- a fault never recovers, or recovers later than `recovery_bound_s` after it started;
- a fault starts and never ends;
- no "drained" marker follows the last fault's end (or, in a run without faults, none at all).

Telemetry only times things here; it never decides whether a record was lost or duplicated.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.checker.findings import Findings


@dataclass(frozen=True)
class Fault:
    """One injected fault and its recovery."""

    kind: str
    target: str
    at_s: float
    ended_s: float | None
    recovered_s: float | None  # seconds from the start of the fault to the first batch after its end

    def to_json(self) -> dict[str, Any]:
        """The "per_fault" entry of the checker's output."""
        return {"fault": self.kind, "target": self.target, "at_s": self.at_s, "recovered_s": self.recovered_s}


@dataclass
class LivenessFindings:
    """The faults of a run and its liveness verdict."""

    faults: list[Fault] = field(default_factory=list)
    liveness: Findings = field(default_factory=Findings)


def faults_of(events: Iterable[Mapping[str, Any]]) -> list[Fault]:
    """Every fault of a history, in start order, with its recovery time."""
    batches: list[float] = []
    starts: list[tuple[str, str, float]] = []
    ends: dict[int, float] = {}
    open_by_target: dict[tuple[str, str], list[int]] = {}
    for event in events:
        f = event["f"]
        if f == "send":
            continue  # the bulk of a history: skip it first
        if f == "batch-completed":
            if not event.get("failed"):
                batches.append(event["t"])
        elif f == "fault-start":
            ident = (str(event.get("fault")), str(event.get("target")))
            open_by_target.setdefault(ident, []).append(len(starts))
            starts.append((*ident, event["t"]))
        elif f == "fault-end":
            pending = open_by_target.get((str(event.get("fault")), str(event.get("target"))))
            if pending:
                ends[pending.pop(0)] = event["t"]
    batches.sort()
    faults = []
    for index, (kind, target, at_s) in enumerate(starts):
        ended = ends.get(index)
        recovered = None
        if ended is not None:
            after = bisect.bisect_right(batches, ended)
            if after < len(batches):
                recovered = round(batches[after] - at_s, 6)
        faults.append(Fault(kind, target, at_s, ended, recovered))
    return faults


def check_liveness(events: Sequence[Mapping[str, Any]], recovery_bound_s: float) -> LivenessFindings:
    """The faults, and a finding for each fault not recovered in time and for a missing drain."""
    out = LivenessFindings(faults=faults_of(events))
    drained = [e["t"] for e in events if e["f"] == "drained"]
    for fault in out.faults:
        where = {"fault": fault.kind, "target": fault.target, "at_s": fault.at_s}
        if fault.ended_s is None:
            out.liveness.add({**where, "why": "the fault never ended"})
        elif fault.recovered_s is None:
            out.liveness.add({**where, "why": "no batch completed after the fault ended"})
        elif fault.recovered_s > recovery_bound_s:
            out.liveness.add(
                {
                    **where,
                    "why": f"recovered in {fault.recovered_s} s, over the bound of {recovery_bound_s} s",
                }
            )
    last_end = max((f.ended_s for f in out.faults if f.ended_s is not None), default=-math.inf)
    if not any(t >= last_end for t in drained):
        out.liveness.add(
            {"why": "no 'drained' marker after the last fault", "last_fault_end_s": _finite(last_end)}
        )
    return out


def _finite(t: float) -> float | None:
    return t if math.isfinite(t) else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of `values` (0 < q <= 100); None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def recovery_stats(faults: Sequence[Fault]) -> dict[str, Any]:
    """The "recovery_s" entry of the checker's output."""
    times = [f.recovered_s for f in faults if f.recovered_s is not None]
    return {
        "count": len(faults),
        "p50": percentile(times, 50),
        "p99": percentile(times, 99),
        "max": max(times) if times else None,
        "per_fault": [f.to_json() for f in faults],
    }
