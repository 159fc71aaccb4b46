"""The sends of a history, folded into one outcome per record id (pure).

Outcome rules: "ok" means acknowledged (durable; must be committed exactly once), "fail" means
definitely refused (must not appear), "info" means unknown (may appear 0 or 1 times). A send with an
"invoke" and no completion (its producer died mid-send) is "info". If one id has several completions
(the contract says it has one), "ok" wins over "info", which wins over "fail": the checker never lets a
contradictory history excuse a loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

_RANK = {"invoke": 0, "fail": 1, "info": 2, "ok": 3}


class Send(NamedTuple):
    """One record a producer sent, with its final outcome (a NamedTuple: 1e5 of them are built fast)."""

    rid: str
    stream: str
    key: str
    seq: int
    value: int
    outcome: str  # "ok" | "fail" | "info"
    t: float  # time of the completion (of the invoke when there is none)


def sends_of(events: Iterable[Mapping[str, Any]]) -> dict[str, Send]:
    """Every sent record id -> its `Send`, in first-send order.

    A completion's missing fields are taken from the invoke (a writer may repeat only "rid").
    """
    invokes: dict[str, Mapping[str, Any]] = {}
    done: dict[str, Mapping[str, Any]] = {}
    for event in events:
        if event.get("f") != "send":
            continue
        kind = event.get("type", "info")
        rid = event["rid"]
        if kind == "invoke":
            invokes.setdefault(rid, event)
        else:
            seen = done.get(rid)
            if seen is None or _RANK.get(kind, 0) >= _RANK.get(seen.get("type", "info"), 0):
                done[rid] = event
    sends = {}
    for rid, first in invokes.items():
        sends[rid] = _send(done.get(rid), first)
    for rid, event in done.items():
        if rid not in sends:
            sends[rid] = _send(event, event)
    return sends


def _send(done: Mapping[str, Any] | None, invoke: Mapping[str, Any]) -> Send:
    if done is None:
        return Send(
            invoke["rid"],
            invoke.get("stream", "a"),
            invoke["key"],
            invoke["seq"],
            invoke["value"],
            "info",
            invoke["t"],
        )
    kind = done.get("type", "info")
    return Send(
        done["rid"],
        done.get("stream", invoke.get("stream", "a")),
        done["key"] if "key" in done else invoke["key"],
        done["seq"] if "seq" in done else invoke["seq"],
        done["value"] if "value" in done else invoke["value"],
        kind if kind in ("ok", "fail") else "info",
        done["t"],
    )
