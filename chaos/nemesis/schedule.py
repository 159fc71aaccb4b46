"""Seeded fault schedules (pure): the same seed, kinds and count always give the same schedule.

A schedule is a list of `Step`s, each a fault kind, the quiet time before it and its parameters
(`detail`, recorded in the history as is). Kinds are the history's fault kinds; the nemesis that
injects them is `chaos.nemesis.inject`. Kinds that need processes the master does not have (a worker
on `local[*]`, where receivers run on driver threads) are left out of the schedule and reported as not
applicable (`applicable`).

Parameters per kind:
- driver-kill: "when" ("random": after a random delay; "after-checkpoint": right after the next
  metadata checkpoint completes, Flink's rule for progress between faults), "delay_s", "burst" (kills
  in quick succession, each while the previous replacement starts up).
- kill-during-recovery: the driver is killed, and its replacement killed again "delay_s" after it
  reports that recovery started.
- crashpoint: "point" (`name@N` for DSTREAM_CRASH_POINT), cycling through the given crash points so
  every one is scheduled once before any is scheduled twice.
- pause: "pause_s" (SIGSTOP for that long, then SIGCONT; shorter than the lease timeout).
- zombie-pause (checkpoint on an object store only): "successor_batches" (SIGSTOP the driver past its
  lease timeout, start a successor that takes the lease over and completes that many batches, then
  SIGCONT the zombie, which must publish nothing and stop on its own).
- worker-kill: "worker" (the victim is the worker at that index, modulo their number, in address order).
- receiver-worker-kill: "receiver" (the victim is the worker hosting the receiver at that index, modulo
  their number, in stream id order: one of the join's two receivers).
- receiver-crash, split-brain: no parameters.
- storage: "scenario" and "plan", a `chaos.storage_faults` plan document (format
  "dstream-storage-faults" v1) for one driver: EIO or S3 SlowDown errors, ENOSPC, latency, a torn
  write then a crash, a power cut (writes not fsynced are lost), or fsyncs that do not sync (harmless
  unless a power cut follows, which the schedule never combines with them: that is the disk lying,
  which no engine survives), each on one role (wal, checkpoint, sink, lease) or on all.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.errors import ChaosValueError
from wal.crashpoints import CRASH_POINTS

LOCAL_KINDS = (
    "driver-kill",
    "receiver-crash",
    "pause",
    "crashpoint",
    "storage",
    "split-brain",
    "kill-during-recovery",
)
WORKER_KINDS = ("worker-kill", "receiver-worker-kill")
# Kinds that need a checkpoint directory on an object store: there the driver lease expires (epochs and
# a heartbeat), while a local directory's lock is held until the process dies.
OBJECT_STORE_KINDS = ("zombie-pause",)
ALL_KINDS = LOCAL_KINDS + WORKER_KINDS + OBJECT_STORE_KINDS
NOT_BUILT: tuple[str, ...] = ()  # kinds the history names that no nemesis injects yet

# Crash points a chaos pipeline reaches (a transactional sink, metadata and RDD checkpoints, the
# WALs); the others need an object-store lease (lease.*), saveAsTextFiles (output.*) or a poison
# batch (quarantine.*). The SQLite sink reaches only sink.after_stage_before_commit of the sink's.
REACHABLE_CRASH_POINTS = (
    "sink.after_stage_before_commit",
    "sink.after_commit_before_publish",
    "sink.after_publish_before_cleanup",
    "metadata.after_write_before_publish",
    "metadata.after_publish_before_callback",
    "metadata.after_publish_before_retention",
    "rdd.after_part_write",
    "rdd.after_parts_before_commit",
    "wal.after_append_before_fsync",
    "wal.after_segment_create",
)


@dataclass(frozen=True)
class Step:
    """One fault of a schedule: its kind, the quiet seconds before it, its parameters."""

    kind: str
    gap_s: float
    detail: dict[str, Any] = field(default_factory=dict)


def applicable(
    kinds: Iterable[str], master: str, *, object_store: bool = False
) -> tuple[list[str], list[str]]:
    """(kinds this master and checkpoint can inject, kinds they cannot) in the given order.

    `object_store`: whether the checkpoint directory is on an object store (`OBJECT_STORE_KINDS`).

    Raises:
        ChaosValueError: an unknown kind.
    """
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in ALL_KINDS]
    if unknown:
        raise ChaosValueError(f"unknown fault kinds {unknown}; expected some of {list(ALL_KINDS)}")
    has_workers = master.startswith(("local-cluster", "dask://", "tcp://"))
    usable = [
        k
        for k in kinds
        if (has_workers or k not in WORKER_KINDS)
        and (object_store or k not in OBJECT_STORE_KINDS)
        and k not in NOT_BUILT
    ]
    return usable, [k for k in kinds if k not in usable]


def check_crash_points(points: Sequence[str]) -> tuple[str, ...]:
    unknown = [p for p in points if p.partition("@")[0] not in CRASH_POINTS]
    if unknown:
        raise ChaosValueError(f"unknown crash points {unknown}; expected some of {sorted(CRASH_POINTS)}")
    return tuple(points)


def plan(
    seed: int,
    kinds: Sequence[str],
    faults_n: int,
    *,
    crash_points: Sequence[str] = REACHABLE_CRASH_POINTS,
    gap_s: tuple[float, float] = (1.0, 2.5),
    pause_s: tuple[float, float] = (0.3, 1.5),
) -> list[Step]:
    """`faults_n` steps drawn from `kinds` with `random.Random(seed)`: kinds in turns, shuffled per round.

    Every kind appears once in each round of len(kinds) steps, in a seeded order, so a short schedule
    still covers every kind it can.

    Raises:
        ChaosValueError: no kinds, an unknown kind or crash point, or a negative count.
    """
    if faults_n < 0:
        raise ChaosValueError(f"faults_n must be >= 0, got {faults_n!r}")
    if not kinds and faults_n:
        raise ChaosValueError("a schedule with faults needs at least one fault kind")
    applicable(kinds, "local-cluster[2]", object_store=True)
    points = check_crash_points(crash_points) or REACHABLE_CRASH_POINTS
    rng = random.Random(seed)
    steps: list[Step] = []
    round_: list[str] = []
    # Crash points and storage scenarios are taken in turn from a seeded start, so short schedules of
    # different seeds cover different ones and a long one covers them all.
    crash_turn = rng.randrange(len(points))
    storage_turn = rng.randrange(len(STORAGE_SCENARIOS))
    while len(steps) < faults_n:
        if not round_:
            round_ = list(kinds)
            rng.shuffle(round_)
        kind = round_.pop()
        point = points[crash_turn % len(points)]
        scenario = STORAGE_SCENARIOS[storage_turn % len(STORAGE_SCENARIOS)]
        detail = _detail(kind, rng, point, scenario, pause_s)
        crash_turn += kind == "crashpoint"
        storage_turn += kind == "storage"
        steps.append(Step(kind, round(rng.uniform(*gap_s), 3), detail))
    return steps


def _detail(
    kind: str, rng: random.Random, point: str, scenario: str, pause_s: tuple[float, float]
) -> dict[str, Any]:
    if kind == "driver-kill":
        burst = rng.choice((1, 1, 1, 2, 3))
        when = rng.choice(("random", "after-checkpoint"))
        return {"when": when, "delay_s": round(rng.uniform(0.0, 0.6), 3), "burst": burst}
    if kind == "kill-during-recovery":
        return {"delay_s": round(rng.uniform(0.0, 0.15), 3)}
    if kind == "crashpoint":
        return {"point": point if "@" in point else f"{point}@{rng.randint(1, 3)}"}
    if kind == "worker-kill":
        return {"worker": rng.randrange(64)}
    if kind == "receiver-worker-kill":
        return {"receiver": rng.randrange(64)}
    if kind == "pause":
        return {"pause_s": round(rng.uniform(*pause_s), 3)}
    if kind == "zombie-pause":
        return {"successor_batches": rng.randint(1, 3)}
    if kind == "storage":
        return storage_plan(rng, scenario)
    return {}


STORAGE_SCENARIOS = ("error", "slowdown", "enospc", "latency", "torn-crash", "power-cut", "lost-fsync")
STORAGE_ROLES = ("wal", "checkpoint", "sink", "lease")


def storage_plan(rng: random.Random, scenario: str) -> dict[str, Any]:
    """The plan document of a storage-fault scenario, its parameters drawn with `rng`."""
    roles = {"roles": [rng.choice(STORAGE_ROLES)]} if rng.random() < 0.7 else {}
    rule: dict[str, Any]
    if scenario in ("error", "slowdown"):
        rule = {"fault": scenario, "probability": round(rng.uniform(0.05, 0.3), 3), **roles}
    elif scenario == "enospc":
        rule = {"fault": "enospc", "probability": 0.2, "count_max": rng.randint(1, 5), **roles}
    elif scenario == "latency":
        rule = {"fault": "latency", "probability": 0.3, "latency_ms": rng.randint(20, 200), **roles}
    elif scenario == "torn-crash":
        rule = {"fault": "torn", "after": rng.randint(0, 20), "count_max": 1, "then": "crash", **roles}
    elif scenario == "power-cut":
        rule = {"fault": "power_cut", "after": rng.randint(5, 60), "count_max": 1, **roles}
    else:
        rule = {"fault": "lost_fsync", "probability": 0.5, **roles}
    document = {
        "format": "dstream-storage-faults",
        "version": 1,
        "seed": rng.randrange(2**31),
        "rules": [rule],
    }
    return {"scenario": scenario, "plan": document}
