"""What the checker reads besides the history: the committed output of a run, as frozen values.

H3's committed-output reader builds these from the sink (committed view) and from raw storage; the
checker never touches storage itself, so it stays a pure function that tests can feed by hand.

Rows per pipeline (what the checker recomputes from `consumed` and the history's sent values):

- stateless: ``(rid, key, seq, value)`` for each consumed record.
- stateful: after each batch, one row per key that has state: ``(key, sum_of_values, count, max_seq)``.
- windowed: per output batch time t: ``(key, sum)`` over the records consumed in batches b with
  ``t - window_ms < b <= t``, for keys whose sum is not 0.
- join: per batch: ``(key, rid_a, rid_b)`` for each pair of "a" and "b" records of the same key
  consumed in that batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Writer:
    """Who committed a batch, as its commit record says.

    Attributes:
        pid: the committing driver's process id.
        t: when it wrote the commit record, in seconds on the history's clock.
    """

    pid: int
    t: float


@dataclass(frozen=True)
class BatchOutput:
    """What one committed batch holds.

    Attributes:
        consumed: ids of the records the batch consumed, committed with its rows (order not significant).
        rows: the result rows the batch committed (JSON-able tuples; see the module docstring).
        writer: who committed it, when the sink records that (None otherwise).
    """

    consumed: tuple[str, ...]
    rows: tuple[Row, ...] = ()
    writer: Writer | None = None


@dataclass(frozen=True)
class CommittedOutput:
    """A run's committed output.

    Attributes:
        batches: batch time in ms -> what that batch committed.
        uncommitted_visible: ids readable in the raw store that no committed batch holds.
        quarantined: ids of the input of quarantined batches (reported apart, not as lost).
    """

    batches: Mapping[int, BatchOutput] = field(default_factory=dict)
    uncommitted_visible: tuple[str, ...] = ()
    quarantined: tuple[str, ...] = ()
