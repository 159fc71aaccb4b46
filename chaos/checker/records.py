"""Per-record checks: lost, duplicated, unexpected, recovered "info" sends, quarantined (pure).

Rules (exactly-once):

- lost: an "ok" send committed by no batch and not quarantined.
- duplicated: any id committed more than once (by two batches, or twice by one).
- unexpected: an id committed that no producer sent (a phantom), or whose send was "fail".
- recovered_info: "info" sends (outcome unknown) committed once: allowed, counted, not an error
  (committed twice they are duplicated; never committed is allowed too).
- quarantined: ids of quarantined batches' input, reported apart; a quarantined "ok" send is not lost.
- uncommitted_visible: ids the reader found in raw storage without a commit; each is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.checker.findings import Findings
from chaos.checker.model import CommittedOutput
from chaos.checker.sends import Send


@dataclass
class RecordFindings:
    """The per-record verdicts and counts of one run."""

    counts: dict[str, int] = field(default_factory=dict)
    lost: Findings = field(default_factory=Findings)
    duplicated: Findings = field(default_factory=Findings)
    unexpected: Findings = field(default_factory=Findings)
    uncommitted_visible: Findings = field(default_factory=Findings)
    quarantined: Findings = field(default_factory=Findings)


def batches_of_rids(committed: CommittedOutput) -> dict[str, list[int]]:
    """Every committed id -> the batch times that committed it, in batch order (one entry per time)."""
    where: dict[str, list[int]] = {}
    for batch_ms in sorted(committed.batches):
        for rid in committed.batches[batch_ms].consumed:
            where.setdefault(rid, []).append(batch_ms)
    return where


def check_records(sends: Mapping[str, Send], committed: CommittedOutput) -> RecordFindings:
    """Compare what was acknowledged with what was committed, one record at a time."""
    out = RecordFindings()
    where = batches_of_rids(committed)
    quarantined = set(committed.quarantined)
    recovered = 0
    for rid, batches in where.items():
        send = sends.get(rid)
        if len(batches) > 1:
            out.duplicated.add({"rid": rid, "count": len(batches), "batches": batches, **_about(send)})
        if send is None:
            out.unexpected.add({"rid": rid, "why": "never sent", "batch": batches[0]})
        elif send.outcome == "fail":
            out.unexpected.add({"rid": rid, "why": "send failed", "batch": batches[0], **_about(send)})
        elif send.outcome == "info":
            recovered += 1
    acknowledged = 0
    for rid, send in sends.items():
        if send.outcome != "ok":
            continue
        acknowledged += 1
        if rid not in where and rid not in quarantined:
            out.lost.add({"rid": rid, "acked_at_s": send.t, **_about(send)})
    for rid in committed.quarantined:
        out.quarantined.add({"rid": rid, **_about(sends.get(rid))})
    for rid in committed.uncommitted_visible:
        out.uncommitted_visible.add({"rid": rid, **_about(sends.get(rid))})
    out.counts = {
        "acknowledged": acknowledged,
        "committed": len(where),
        "lost": out.lost.count,
        "duplicated": out.duplicated.count,
        "unexpected": out.unexpected.count,
        "recovered_info": recovered,
    }
    return out


def _about(send: Send | None) -> dict[str, Any]:
    if send is None:
        return {}
    return {"key": send.key, "seq": send.seq, "outcome": send.outcome}
