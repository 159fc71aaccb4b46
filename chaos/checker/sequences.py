"""Per-key sequence checks, Flink's SemanticsCheckMapper done offline (pure).

Each key belongs to one producer, which numbers its sends 1, 2, 3... Walking the committed batches in
batch-time order (within one batch, the order of `consumed` is not significant), the committed seqs of
a key must be each sent seq at most once, never going back, and without holes. A "key" here is the pair
(stream, key): the join's two streams are received apart, so the engine owes no order between them.
Precisely, for one key:

- key_repeats: a seq committed more than once; one finding per repeated seq.
- key_reorders: a seq committed in a later batch than a higher seq of the same key (a repeat is not
  also a reorder); one finding per such record.
- key_gaps: a hole: a run of "ok" seqs that no batch committed (and not quarantined), below the key's
  highest committed seq. "fail" and "info" seqs may be absent, so they neither open nor close a hole;
  a committed seq closes it. One finding per hole. Missing "ok" seqs above the highest committed one
  are the unseen tail: they are lost (see records), not a hole.

Committed ids that no producer sent and "fail" sends are left to the unexpected check, so that one
phantom is not also reported as a reorder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from chaos.checker.findings import Findings
from chaos.checker.model import CommittedOutput
from chaos.checker.sends import Send

Key = tuple[str, str]  # (stream, key)


def _named(key: Key) -> dict[str, str]:
    return {"stream": key[0], "key": key[1]}


@dataclass
class SequenceFindings:
    """The per-key verdicts of one run."""

    gaps: Findings = field(default_factory=Findings)
    repeats: Findings = field(default_factory=Findings)
    reorders: Findings = field(default_factory=Findings)


def check_sequences(sends: Mapping[str, Send], committed: CommittedOutput) -> SequenceFindings:
    """Walk every key's committed seqs in batch order."""
    out = SequenceFindings()
    by_key: dict[Key, list[tuple[int, int]]] = {}  # key -> (batch_ms, seq) in batch order
    for batch_ms in sorted(committed.batches):
        for rid in committed.batches[batch_ms].consumed:
            send = sends.get(rid)
            if send is not None and send.outcome != "fail":
                by_key.setdefault((send.stream, send.key), []).append((batch_ms, send.seq))
    for key in sorted(by_key):
        _repeats_and_reorders(key, by_key[key], out)
    sent_by_key: dict[Key, dict[int, str]] = {}
    for send in sends.values():
        sent_by_key.setdefault((send.stream, send.key), {})[send.seq] = send.outcome
    quarantined = {
        (s.stream, s.key, s.seq) for rid in committed.quarantined if (s := sends.get(rid)) is not None
    }
    for key in sorted(by_key):
        committed_seqs = {seq for _, seq in by_key[key]}
        _gaps(key, sent_by_key.get(key, {}), committed_seqs, quarantined, out.gaps)
    return out


def _repeats_and_reorders(key: Key, seen: list[tuple[int, int]], out: SequenceFindings) -> None:
    batches_of: dict[int, list[int]] = {}
    max_before, max_before_batch = 0, -1  # highest seq of the batches before the current one
    max_here, current = 0, None
    for batch_ms, seq in seen:
        if batch_ms != current:
            if max_here > max_before:
                max_before, max_before_batch = max_here, current if current is not None else -1
            current, max_here = batch_ms, 0
        batches = batches_of.setdefault(seq, [])
        batches.append(batch_ms)
        if len(batches) == 1 and seq < max_before:
            out.reorders.add(
                {
                    **_named(key),
                    "seq": seq,
                    "batch": batch_ms,
                    "after_seq": max_before,
                    "after_batch": max_before_batch,
                }
            )
        max_here = max(max_here, seq)
    for seq in sorted(batches_of):
        if len(batches_of[seq]) > 1:
            out.repeats.add(
                {**_named(key), "seq": seq, "count": len(batches_of[seq]), "batches": batches_of[seq]}
            )


def _gaps(
    key: Key,
    sent: Mapping[int, str],
    committed_seqs: set[int],
    quarantined: set[tuple[str, str, int]],
    gaps: Findings,
) -> None:
    top = max(committed_seqs)
    hole: list[int] = []
    for seq in sorted(s for s in sent if s < top):
        if seq in committed_seqs:
            if hole:
                gaps.add({**_named(key), "missing": [hole[0], hole[-1]], "size": len(hole), "next_seq": seq})
                hole = []
        elif sent[seq] == "ok" and (*key, seq) not in quarantined:
            hole.append(seq)
    if hole:
        gaps.add({**_named(key), "missing": [hole[0], hole[-1]], "size": len(hole), "next_seq": top})
