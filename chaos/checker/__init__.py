"""PLACEHOLDER until branch chaos-checker's checker lands (H5 owns chaos/checker/): a minimal check."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from chaos.checker.model import CommittedOutput


def _errors(items: list[str]) -> dict[str, Any]:
    return {"count": len(items), "examples": sorted(items)[:8]}


def check(
    history_events: Sequence[Mapping[str, Any]],
    header: Mapping[str, Any],
    committed: CommittedOutput,
    *,
    recovery_bound_s: float,
) -> dict[str, Any]:
    sends = [e for e in history_events if e.get("f") == "send"]
    ok = {e["rid"] for e in sends if e.get("type") == "ok"}
    info = {e["rid"] for e in sends if e.get("type") == "info"}
    counts = Counter(r for b in committed.batches.values() for r in b.consumed)
    lost = sorted(ok - set(counts) - set(committed.quarantined))
    duplicated = sorted(r for r, n in counts.items() if n > 1)
    unexpected = sorted(set(counts) - ok - info)
    errors = {
        "lost": _errors(lost),
        "duplicated": _errors(duplicated),
        "unexpected": _errors(unexpected),
        "uncommitted_visible": _errors(list(committed.uncommitted_visible)),
    }
    types = [k for k, v in errors.items() if v["count"]]
    return {
        "valid": not types,
        "error_types": types,
        "records": {
            "acknowledged": len(ok),
            "committed": sum(counts.values()),
            "lost": len(lost),
            "duplicated": len(duplicated),
            "unexpected": len(unexpected),
            "recovered_info": len(info & set(counts)),
        },
        **errors,
        "recovery_s": {"count": 0, "p50": None, "p99": None, "max": None, "per_fault": []},
    }
