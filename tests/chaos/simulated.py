"""Simulated chaos runs for the checker's and the drill's tests: a history and a committed output.

`simulate` plays producers that send records to an exactly-once engine: every "ok" send and some
"info" sends land in the first batch after their acknowledgement, "fail" sends never land; nemesis
faults delay the engine's "batch-completed" telemetry. Rows are computed here by brute force,
independently of the checker's models, so a clean simulated run must pass the checker. Tests plant
anomalies by editing `assignment` (or the rows) before calling `committed()`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.checker import BatchOutput, CommittedOutput
from chaos.history import run_header


@dataclass
class SimRun:
    """A simulated run: its history and what its sink committed (editable before `committed()`)."""

    header: dict[str, Any]
    events: list[dict[str, Any]]
    sends: dict[str, dict[str, Any]]  # rid -> the completed send event
    assignment: dict[int, list[str]]  # batch ms -> consumed rids, in consumption order
    quarantined: list[str] = field(default_factory=list)
    uncommitted_visible: list[str] = field(default_factory=list)

    @property
    def run(self) -> dict[str, Any]:
        return dict(self.header["run"])

    def ok_rids(self) -> list[str]:
        return [rid for rid, s in self.sends.items() if s["type"] == "ok"]

    def batch_of(self, rid: str) -> int:
        return next(t for t, rids in self.assignment.items() if rid in rids)

    def committed(self) -> CommittedOutput:
        rows = rows_for(self.run, self.sends, self.assignment)
        return CommittedOutput(
            batches={t: BatchOutput(tuple(self.assignment[t]), tuple(rows[t])) for t in self.assignment},
            uncommitted_visible=tuple(self.uncommitted_visible),
            quarantined=tuple(self.quarantined),
        )


def simulate(
    rng: random.Random,
    pipeline: str = "stateful",
    *,
    producers: int = 2,
    keys_per_producer: int = 2,
    sends_per_key: int = 10,
    p_fail: float = 0.1,
    p_info: float = 0.1,
    batch_ms: int = 500,
    faults: Sequence[tuple[str, float, float]] = (),
    recovery_delay_s: float = 0.7,
) -> SimRun:
    """A clean run; `faults` are (kind, start_s, duration_s), each delaying batches until it is over."""
    window_ms = slide_ms = None
    if pipeline == "windowed":
        slide_ms = batch_ms * rng.choice([1, 2])
        window_ms = slide_ms * rng.choice([1, 2, 3])
    header = run_header(
        rng.randrange(1 << 30),
        {
            "pipeline": pipeline,
            "sink": "transactional",
            "master": "local[2]",
            "checkpoint": "memory://sim",
            "batch_ms": batch_ms,
            "window_ms": window_ms,
            "slide_ms": slide_ms,
            "faults": sorted({kind for kind, _, _ in faults}),
            "recovery_bound_s": 30.0,
        },
    )
    events: list[dict[str, Any]] = [{"t": 0.0, "proc": "driver-0", "f": "driver-started", "type": "info"}]
    sends: dict[str, dict[str, Any]] = {}
    landed: dict[str, float] = {}
    next_seq = {(n, j): 1 for n in range(producers) for j in range(keys_per_producer)}
    t = 0.0
    while next_seq:
        n, j = rng.choice(sorted(next_seq))
        seq = next_seq[(n, j)]
        next_seq[(n, j)] = seq + 1
        if seq == sends_per_key:
            del next_seq[(n, j)]
        stream = rng.choice("ab") if pipeline == "join" else "a"
        send = {"proc": f"producer-{n}", "f": "send", "rid": f"p{n}-k{j}-{seq}", "stream": stream}
        send.update(key=f"p{n}-k{j}", seq=seq, value=rng.randint(1, 9))
        t += rng.uniform(0.005, 0.08)
        events.append({"t": round(t, 6), **send, "type": "invoke"})
        t += rng.uniform(0.001, 0.01)
        roll = rng.random()
        outcome = "fail" if roll < p_fail else "info" if roll < p_fail + p_info else "ok"
        done = {"t": round(t, 6), **send, "type": outcome}
        events.append(done)
        sends[send["rid"]] = done
        if outcome == "ok" or (outcome == "info" and rng.random() < 0.5):
            landed[send["rid"]] = t
    end_s = max([t, *(start + duration + recovery_delay_s for _, start, duration in faults)]) + 0.5
    last_batch = (int(end_s * 1000) // batch_ms + 1) * batch_ms
    assignment: dict[int, list[str]] = {b: [] for b in range(batch_ms, last_batch + 1, batch_ms)}
    for rid, at in landed.items():
        assignment[(int(at * 1000) // batch_ms + 1) * batch_ms].append(rid)
    for kind, start, duration in faults:
        target = "driver-0" if kind == "driver-kill" else "receiver-0"
        common = {"proc": "nemesis", "type": "info", "fault": kind, "target": target, "pid": 100}
        events.append({"t": start, **common, "f": "fault-start", "detail": {}})
        events.append({"t": start + duration, **common, "f": "fault-end", "detail": {}})
    for b in assignment:
        done_at = b / 1000 + 0.05
        for _, start, duration in faults:
            if start <= done_at < start + duration + recovery_delay_s:
                done_at = start + duration + recovery_delay_s
        events.append(
            {"t": round(done_at, 6), "proc": "driver-0", "f": "batch-completed", "type": "info", "batch": b}
        )
    events.sort(key=lambda e: e["t"])
    events.append(
        {"t": round(max(e["t"] for e in events) + 1, 6), "proc": "runner", "f": "drained", "type": "info"}
    )
    return SimRun(header, events, sends, assignment)


# -- rows, by brute force ------------------------------------------------------------------------


def rows_for(
    run: dict[str, Any], sends: dict[str, dict[str, Any]], assignment: dict[int, list[str]]
) -> dict[int, list[tuple[Any, ...]]]:
    """What a correct pipeline commits for this assignment of records to batches."""
    times = sorted(assignment)
    known = {t: [sends[r] for r in assignment[t] if r in sends] for t in times}
    per_batch_sums = {t: _sums(known[t]) for t in times}
    state: dict[str, list[int]] = {}  # stateful: key -> [sum, count, max seq]
    out: dict[int, list[tuple[Any, ...]]] = {}
    for t in times:
        if run["pipeline"] == "stateless":
            out[t] = [(s["rid"], s["key"], s["seq"], s["value"]) for s in known[t]]
        elif run["pipeline"] == "stateful":
            for s in known[t]:
                agg = state.setdefault(s["key"], [0, 0, 0])
                agg[0] += s["value"]
                agg[1] += 1
                agg[2] = max(agg[2], s["seq"])
            out[t] = [(k, *agg) for k, agg in sorted(state.items())]
        elif run["pipeline"] == "windowed":
            out[t] = []
            if t % run["slide_ms"] == 0:
                window: dict[str, int] = {}
                for b in range(t - run["window_ms"] + run["batch_ms"], t + 1, run["batch_ms"]):
                    for k, v in per_batch_sums.get(b, {}).items():
                        window[k] = window.get(k, 0) + v
                out[t] = [(k, v) for k, v in window.items() if v]
        else:
            a_side = [s for s in known[t] if s["stream"] == "a"]
            b_side = [s for s in known[t] if s["stream"] == "b"]
            out[t] = [(a["key"], a["rid"], b["rid"]) for a in a_side for b in b_side if a["key"] == b["key"]]
    return out


def _sums(records: list[dict[str, Any]]) -> dict[str, int]:
    sums: dict[str, int] = {}
    for s in records:
        sums[s["key"]] = sums.get(s["key"], 0) + s["value"]
    return sums
