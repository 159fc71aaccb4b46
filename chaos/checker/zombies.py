"""The zombie rules: a driver paused past its lease publishes nothing once it wakes, and stops (pure).

A "zombie-pause" fault stops a driver (SIGSTOP) longer than its lease timeout on an object-store
checkpoint directory, lets a successor take the lease over and make progress, and then wakes the
paused driver (SIGCONT): from its "fault-start" on, that driver is a zombie. Its "fault-start" names
the zombie's pid and time; its "fault-end" detail says whether the zombie stopped on its own
("zombie_stopped") and the successor's pid.

- zombie_publish: a committed batch whose commit record names a zombie as its writer, with a writer
  time at or after the fault's start. The writer ("pid", and "t" on the history's clock, read by the
  committing driver right before it writes the commit record; `chaos.pipelines.WriterTaggedFileSink`)
  comes with the committed output. A paused process reads no clock, so such a commit was made after
  the zombie woke, when the successor held the lease. One finding per batch: {"batch", "writer_pid",
  "t", "fault_at_s"}.
- zombie_not_stopped: a zombie-pause fault whose zombie was still running when the nemesis gave up
  waiting for it (it was then killed). One finding per fault: {"zombie_pid", "fault_at_s"}.

Batches without a writer (sinks that do not record one) are not judged. A commit whose clock was read
before the SIGSTOP and whose record was written after the wake is not told apart from an earlier
one: that window is a few instructions wide, and its batch is still judged by the record rules
(a zombie's late commit that lost or duplicated records shows there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.checker.findings import Findings
from chaos.checker.model import CommittedOutput

ZOMBIE_FAULT = "zombie-pause"


@dataclass
class ZombieFindings:
    """The zombie rules' two error types."""

    publish: Findings = field(default_factory=Findings)
    not_stopped: Findings = field(default_factory=Findings)


def zombies_of(events: Sequence[Mapping[str, Any]]) -> dict[int, float]:
    """The zombie pids of a history and when each was paused (the earliest, if paused twice)."""
    out: dict[int, float] = {}
    for event in events:
        if (
            event["f"] == "fault-start"
            and event.get("fault") == ZOMBIE_FAULT
            and event.get("pid") is not None
        ):
            pid = int(event["pid"])
            out[pid] = min(out.get(pid, event["t"]), event["t"])
    return out


def check_zombies(events: Sequence[Mapping[str, Any]], committed: CommittedOutput) -> ZombieFindings:
    """Apply the zombie rules (see the module docstring)."""
    out = ZombieFindings()
    paused = zombies_of(events)
    for batch_ms, batch in sorted(committed.batches.items()):
        writer = batch.writer
        if writer is None or writer.pid not in paused:
            continue
        if writer.t >= paused[writer.pid]:
            out.publish.add(
                {"batch": batch_ms, "writer_pid": writer.pid, "t": writer.t, "fault_at_s": paused[writer.pid]}
            )
    for event in events:
        if event["f"] != "fault-end" or event.get("fault") != ZOMBIE_FAULT:
            continue
        detail = event.get("detail") or {}
        if detail.get("zombie_stopped") is False:
            out.not_stopped.add({"zombie_pid": detail.get("zombie_pid"), "fault_at_s": event["t"]})
    return out
