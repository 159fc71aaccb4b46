"""What a block of RDD records is kept as: the records themselves when none can change, else pickled.

A local block manager returns the stored object itself (no copy), so a task that mutated a record it
read from a cached block (a user function appending to a list in an updateStateByKey state, updating
a dict of a parallelized collection) would change the block: another action, a recomputation, or the
background checkpoint writer reading the previous batch's state would then see the mutation. PySpark
never shares (it keeps every block serialized), and neither did this engine when blocks were pickled
into every task. So a block is kept as is only when its records cannot be mutated: exactly `str`,
`bytes`, numbers, `None`, or tuples of those (lines of text, word-count pairs, the state of a running
count), and at `StorageLevel`s that ask for deserialized storage; any other list is pickled once when
kept (`PackedRecords`) and unpickled into a fresh copy by every reader. Exact types only: a subclass
may carry mutable attributes.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

from dstream.pickling import dumps_records
from dstream.storage_level import StorageLevel

_ATOMS = frozenset({str, bytes, int, float, bool, complex, type(None)})


@dataclass(frozen=True)
class PackedRecords:
    """A block's records, pickled once (protocol 5) because they could be mutated in place."""

    data: bytes


def holds_only_immutable(records: list[Any]) -> bool:
    """Whether every record is an atom (exact `str`, `bytes`, number, `None`) or a tuple of atoms."""
    kinds = set(map(type, records))
    if kinds <= _ATOMS:
        return True
    if not kinds <= _ATOMS | {tuple}:
        return False
    atoms = _ATOMS
    return all(type(x) in atoms for r in records if type(r) is tuple for x in r)


def to_block(records: list[Any], level: StorageLevel) -> Any:
    """The value to put in a block manager for a partition kept at `level`.

    Raises:
        Whatever pickle raises for a record it cannot pickle (only records that are not immutable
        are pickled).
    """
    if level.deserialized or holds_only_immutable(records):
        return records
    return PackedRecords(dumps_records(records))


def from_block(value: Any) -> list[Any]:
    """The records of a block value made by `to_block` (a fresh copy when they were packed)."""
    if isinstance(value, PackedRecords):
        records: list[Any] = pickle.loads(value.data)
        return records
    return value  # type: ignore[no-any-return]
