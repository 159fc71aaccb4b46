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

from collections import Counter
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
    get = sends.get
    for batch_ms in sorted(committed.batches):
        for rid in committed.batches[batch_ms].consumed:
            send = get(rid)
            if send is not None and send.outcome != "fail":
                key = (send.stream, send.key)
                seen = by_key.get(key)
                if seen is None:
                    seen = by_key[key] = []
                seen.append((batch_ms, send.seq))
    ok_by_key: dict[Key, list[int]] = {}
    for send in sends.values():
        if send.outcome == "ok":
            ok_by_key.setdefault((send.stream, send.key), []).append(send.seq)
    quarantined = {
        (s.stream, s.key, s.seq) for rid in committed.quarantined if (s := sends.get(rid)) is not None
    }
    for key in sorted(by_key):
        _repeats_and_reorders(key, by_key[key], out)
        _gaps(key, ok_by_key.get(key, []), {seq for _, seq in by_key[key]}, quarantined, out.gaps)
    return out


def _repeats_and_reorders(key: Key, seen: list[tuple[int, int]], out: SequenceFindings) -> None:
    counts = Counter(seq for _, seq in seen)
    repeated = {seq for seq, n in counts.items() if n > 1}
    first_seen: set[int] = set()  # repeated seqs met once already: a repeat is not also a reorder
    max_before, max_before_batch = 0, -1  # highest seq of the batches before the current one
    max_here, current = 0, -1
    for batch_ms, seq in seen:
        if batch_ms != current:
            if max_here > max_before:
                max_before, max_before_batch = max_here, current
            current, max_here = batch_ms, 0
        if seq < max_before and not (repeated and seq in first_seen):
            after = {"after_seq": max_before, "after_batch": max_before_batch}
            out.reorders.add({**_named(key), "seq": seq, "batch": batch_ms, **after})
        if repeated and seq in repeated:
            first_seen.add(seq)
        if seq > max_here:
            max_here = seq
    for seq in sorted(repeated):
        batches = [b for b, s in seen if s == seq]
        out.repeats.add({**_named(key), "seq": seq, "count": len(batches), "batches": batches})


def _gaps(
    key: Key,
    ok_seqs: list[int],
    committed_seqs: set[int],
    quarantined: set[tuple[str, str, int]],
    gaps: Findings,
) -> None:
    top = max(committed_seqs)
    hole: list[int] = []
    # Only "ok" seqs open a hole and only committed seqs close one ("fail"/"info" may be absent).
    for seq in sorted({s for s in ok_seqs if s < top} | {s for s in committed_seqs if s < top}):
        if seq in committed_seqs:
            if hole:
                gaps.add({**_named(key), "missing": [hole[0], hole[-1]], "size": len(hole), "next_seq": seq})
                hole = []
        elif (*key, seq) not in quarantined:
            hole.append(seq)
    if hole:
        gaps.add({**_named(key), "missing": [hole[0], hole[-1]], "size": len(hole), "next_seq": top})
