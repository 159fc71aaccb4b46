"""Aggregates recomputed from the committed input and compared with the committed rows (pure).

Kafka Streams' EosTestDriver method: whatever each batch committed as consumed is replayed, in batch
order, through a model of the pipeline; every committed batch's rows must equal the model's rows
exactly (as multisets). This catches a state update applied twice even where no record id is committed
twice. Records the model cannot value (ids no producer sent) are left out of the model: the unexpected
check reports them.

Per pipeline (rows as in `chaos.checker.model`):

- stateless: the rows of batch t are (rid, key, seq, value) of its consumed records.
- stateful: the state after batch t of every key consumed so far: (key, sum, count, max_seq).
- windowed: at each output time t, (key, sum) over batches b with t - window_ms < b <= t, sum != 0.
  Output times: when slide_ms > batch_ms, only every slide_ms-th batch time has rows; their phase is
  taken from the first committed batch with rows (default: multiples of slide_ms); other batches
  must have no rows.
- join: per batch, (key, rid_a, rid_b) for each "a" and "b" record pair of one key.

A finding names the batch and the row's identity (the rid, the key, or the whole join row), with the
expected and the committed row (null where one side has none).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chaos.checker.findings import Findings
from chaos.checker.model import CommittedOutput, Row
from chaos.checker.sends import Send
from chaos.errors import ChaosValueError

Model = Callable[[Sequence[int], Mapping[int, list[Send]]], dict[int, list[Row]]]


def normalize(value: Any) -> Any:
    """Rows read back from JSON hold lists where tuples were written: compare them as tuples."""
    if isinstance(value, list | tuple):
        return tuple(normalize(v) for v in value)
    return value


def _rows_counter(rows: Sequence[Any]) -> Counter[Row]:
    try:  # the usual case: flat rows of scalars, hashable once they are tuples
        return Counter(map(tuple, rows))
    except TypeError:
        return Counter(normalize(row) for row in rows)


def check_aggregates(
    pipeline: str,
    sends: Mapping[str, Send],
    committed: CommittedOutput,
    *,
    batch_ms: int,
    window_ms: int | None = None,
    slide_ms: int | None = None,
) -> Findings:
    """Recompute every committed batch's rows for `pipeline` and report the differences."""
    times = sorted(committed.batches)
    records = {
        t: [s for rid in committed.batches[t].consumed if (s := sends.get(rid)) is not None] for t in times
    }
    if pipeline == "stateless":
        expected = _stateless(times, records)
    elif pipeline == "stateful":
        expected = _stateful(times, records)
    elif pipeline == "windowed":
        if window_ms is None or slide_ms is None:
            raise ChaosValueError("a windowed check needs window_ms and slide_ms, got null")
        phase = _phase(committed, slide_ms) if slide_ms > batch_ms else None
        expected = _windowed(times, records, window_ms, slide_ms, phase)
    elif pipeline == "join":
        expected = _join(times, records)
    else:
        raise ChaosValueError(f"pipeline {pipeline!r}: expected stateless, stateful, windowed or join")
    identity = _identity(pipeline)
    findings = Findings()
    for t in times:
        _compare(
            t, Counter(expected.get(t, [])), _rows_counter(committed.batches[t].rows), identity, findings
        )
    return findings


def _identity(pipeline: str) -> Callable[[Row], Any]:
    if pipeline == "join":
        return lambda row: row
    return lambda row: row[0] if row else None


def _compare(
    batch: int, want: Counter[Row], got: Counter[Row], identity: Callable[[Row], Any], out: Findings
) -> None:
    if want == got:
        return
    missing: dict[Any, Row] = {}
    extra: dict[Any, Row] = {}
    for row in want - got:
        missing.setdefault(identity(row), row)
    for row in got - want:
        extra.setdefault(identity(row), row)
    for ident in sorted(set(missing) | set(extra), key=repr):
        row_key = ident if not isinstance(ident, tuple) else list(ident)
        out.add(
            {
                "batch": batch,
                "row_key": row_key,
                "expected": _json_row(missing.get(ident)),
                "actual": _json_row(extra.get(ident)),
            }
        )


def _json_row(row: Row | None) -> list[Any] | None:
    return None if row is None else list(row)


def _stateless(times: Sequence[int], records: Mapping[int, list[Send]]) -> dict[int, list[Row]]:
    return {t: [(s.rid, s.key, s.seq, s.value) for s in records[t]] for t in times}


def _stateful(times: Sequence[int], records: Mapping[int, list[Send]]) -> dict[int, list[Row]]:
    state: dict[str, tuple[int, int, int]] = {}  # key -> (sum, count, max_seq)
    out: dict[int, list[Row]] = {}
    for t in times:
        for s in records[t]:
            total, count, top = state.get(s.key, (0, 0, 0))
            state[s.key] = (total + s.value, count + 1, max(top, s.seq))
        out[t] = [(key, *agg) for key, agg in state.items()]
    return out


def _phase(committed: CommittedOutput, slide_ms: int) -> int:
    for t in sorted(committed.batches):
        if committed.batches[t].rows:
            return t % slide_ms
    return 0


def _windowed(
    times: Sequence[int],
    records: Mapping[int, list[Send]],
    window_ms: int,
    slide_ms: int,
    phase: int | None,
) -> dict[int, list[Row]]:
    out: dict[int, list[Row]] = {}
    sums: Counter[str] = Counter()  # over the batches inside the current window
    start = 0  # index of the oldest batch inside the window
    for t in times:
        for s in records[t]:
            sums[s.key] += s.value
        while times[start] <= t - window_ms:
            for s in records[times[start]]:
                sums[s.key] -= s.value
            start += 1
        if phase is not None and t % slide_ms != phase:
            out[t] = []
        else:
            out[t] = [(key, total) for key, total in sums.items() if total != 0]
    return out


def _join(times: Sequence[int], records: Mapping[int, list[Send]]) -> dict[int, list[Row]]:
    out: dict[int, list[Row]] = {}
    for t in times:
        a_side: dict[str, list[str]] = {}
        b_side: dict[str, list[str]] = {}
        for s in records[t]:
            (a_side if s.stream == "a" else b_side).setdefault(s.key, []).append(s.rid)
        out[t] = [(key, ra, rb) for key, rids in a_side.items() for ra in rids for rb in b_side.get(key, [])]
    return out
