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
        if event["f"] != "send":
            continue
        kind = event.get("type", "info")
        rid = event["rid"]
        if kind == "invoke":
            if rid not in invokes:
                invokes[rid] = event
            continue
        seen = done.get(rid)
        if seen is None or _RANK.get(kind, 0) >= _RANK.get(seen.get("type", "info"), 0):
            done[rid] = event
    sends = {rid: _send(done.get(rid), first) for rid, first in invokes.items()}
    for rid, event in done.items():
        if rid not in sends:
            sends[rid] = _send(event, event)
    return sends


def _send(done: Mapping[str, Any] | None, invoke: Mapping[str, Any]) -> Send:
    if done is None:
        done, outcome = invoke, "info"
    else:
        kind = done.get("type", "info")
        outcome = kind if kind in ("ok", "fail") else "info"
    try:  # the usual case: the completion repeats every field
        return Send(
            done["rid"], done.get("stream", "a"), done["key"], done["seq"], done["value"], outcome, done["t"]
        )
    except KeyError:
        fields = {**invoke, **done}
        return Send(
            fields["rid"],
            fields.get("stream", "a"),
            fields["key"],
            fields["seq"],
            fields["value"],
            outcome,
            done["t"],
        )
