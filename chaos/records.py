"""The workload's records on the wire and the pipelines' output records, and their codecs.

A workload record is one JSON object per pushed record (or per line of an input file)::

    {"rid": "p0-k1-7", "stream": "a", "key": "p0-k1", "seq": 7, "value": 3}

Every pipeline writes, per batch and in one sink transaction, two kinds of output record:
`{"c": rid}` for each record it consumed and `{"r": [...]}` for each result row (the contract's row
tuples as JSON lists). The SQLite sink stores (key, value) pairs, so there each kind is keyed by the
batch time and the item, and its value counts how often the batch produced it (a count keeps a
duplicate visible to the checker where an upsert would hide it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Record:
    """One generated record."""

    rid: str
    stream: str
    key: str
    seq: int
    value: int

    def encode(self) -> str:
        return json.dumps(
            {"rid": self.rid, "stream": self.stream, "key": self.key, "seq": self.seq, "value": self.value},
            separators=(",", ":"),
        )


def decode(raw: Any) -> dict[str, Any]:
    """A pushed record (bytes or str) or an input line, as the dict `Record.encode` wrote."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    record: dict[str, Any] = json.loads(text)
    return record


def consumed(record: dict[str, Any]) -> dict[str, Any]:
    """The output record saying that `record` was consumed."""
    return {"c": record["rid"]}


def row(*values: Any) -> dict[str, Any]:
    """The output record of one result row."""
    return {"r": list(values)}


def kv_key(batch_ms: int, output: dict[str, Any]) -> str:
    """The SQLite sink's key of an output record of batch `batch_ms`."""
    return json.dumps([batch_ms, output], sort_keys=True, separators=(",", ":"))


def parse_kv_key(key: str) -> tuple[int, dict[str, Any]]:
    """(batch_ms, output record) from a `kv_key`."""
    batch_ms, output = json.loads(key)
    return int(batch_ms), output
