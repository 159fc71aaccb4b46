"""Pickling records for a trip across a task boundary or to disk: fast for plain data, exact otherwise.

Tasks carry partitions of records to workers; results, shuffle buckets, stored blocks and the
receiver WAL carry them back. Pickle's memo (one table entry per object, so that an object
referenced twice is written once) is most of the cost of pickling a list of strings or tuples:
200,000 short lines take 38 ms with the memo and 5 ms without it on the benchmark machine, against
about 200 ms to word-count them. So `dumps_records` pickles without the memo (the C pickler's fast
mode) when that is safe, and with it otherwise:

1. **Sample.** Up to `SAMPLE_RECORDS` records from each record collection in the object (a list of
   records, a dict's items, a task's input blocks, a result's value and blocks) are pickled both
   ways. If the fast form is more than `SHARING_RATIO_MAX` times the memo form, records share
   objects (an inverted index's `(word, document)` pairs, a result whose value and cached block hold
   the same records) and the memo is kept for the whole object: sharing survives, nothing blows up.
2. **Fast, capped.** Otherwise the whole object is pickled without the memo into a buffer capped at
   `GROWTH_SLACK` times what the sample predicts (plus `CAP_SLACK_BYTES`), so that sharing the sample
   did not see (a record far down the list, a deep DAG of shared lists) falls back instead of growing
   without bound.
3. **Fallback.** The memo form: a cycle, an object fast mode refuses (below), or a cap hit.

Transport mode (the default) is for records going to another process. Functions, classes and
instances of classes defined in ``__main__``, inside a function, or in a module registered with
`cloudpickle.register_pickle_by_value` must travel by value, so the fast pickler refuses them and
the fallback is `cloudpickle.dumps` (memo, by value). That fallback also pickles what plain pickle
cannot (a lambda inside a record), where PySpark would fail; what cloudpickle cannot pickle (a lock)
raises cloudpickle's error. Records of a ``__main__`` class therefore always take the slow path
(about 2.7 times plain pickle): define record classes in a module.

Durable mode (`by_reference=True`) is for data read back by a later run of the same program
(receiver WAL): classes are written by reference, as plain pickle does, so a restarted driver's
records are instances of its own classes; the fallback is `pickle.dumps`, then `cloudpickle.dumps`
for what plain pickle refuses.

The output is ordinary pickle (protocol 5) either way, read back with `pickle.loads`. What the fast
path does not keep is sharing the sample did not reveal: two far-apart records that reference one
list arrive as two equal lists. A pickling hook (`__reduce__`, `__getstate__`) may run more than
once, since a record can be pickled for the sample and again for the output; hooks must be pure.
"""

from __future__ import annotations

import io
import pickle
import types
from collections.abc import Iterable, Sized
from itertools import islice
from typing import Any

import cloudpickle

PICKLE_PROTOCOL = 5
SAMPLE_RECORDS = 256
SHARING_RATIO_MAX = 1.25
GROWTH_SLACK = 4
CAP_SLACK_BYTES = 1 << 20


class _Refused(Exception):
    """The fast pickler met something it must not write: an object to send by value, or too much."""


class _CappedBuffer(io.BytesIO):
    """A buffer that refuses to grow past `cap_bytes` (the C pickler writes it in ~64 KiB frames)."""

    def __init__(self, cap_bytes: float) -> None:
        super().__init__()
        self._cap_bytes = cap_bytes

    def write(self, data: Any) -> int:
        written = super().write(data)
        if self.tell() > self._cap_bytes:
            raise _Refused(f"fast pickle passed {self._cap_bytes:.0f} bytes")
        return written


class _FastPickler(pickle.Pickler):
    """The C pickler in fast mode (no memo), refusing what cloudpickle would write by value.

    `reducer_override` runs only for objects that are not of a builtin container or scalar type,
    so plain data (str, bytes, numbers, tuples, lists, dicts, sets) never reaches Python code.
    """

    def __init__(self, file: io.BytesIO, by_value_modules: frozenset[str] | None) -> None:
        super().__init__(file, protocol=PICKLE_PROTOCOL)
        self.fast = True
        self._by_value_modules = by_value_modules  # None: durable mode, everything by reference

    def reducer_override(self, obj: Any) -> Any:
        if self._by_value_modules is not None:
            owner = obj if isinstance(obj, types.FunctionType | type) else type(obj)
            if self._travels_by_value(owner):
                raise _Refused(f"{owner!r} travels by value")
        return NotImplemented

    def _travels_by_value(self, owner: Any) -> bool:
        """Whether cloudpickle would write `owner` (a function or class) by value."""
        module = getattr(owner, "__module__", None)
        if module in ("__main__", None) or "<locals>" in getattr(owner, "__qualname__", ""):
            return True
        if self._by_value_modules and isinstance(module, str):
            return any(module == m or module.startswith(m + ".") for m in self._by_value_modules)
        return False


def dumps_records(obj: Any, *, by_reference: bool = False, collections: Iterable[Any] | None = None) -> bytes:
    """Pickle ``obj`` (records, or a task, result or log record holding them); see the module docstring.

    Args:
        obj: what to pickle.
        by_reference: durable mode (classes by reference) instead of transport mode.
        collections: the record collections inside ``obj`` to sample; by default found by
            `record_collections`.

    Raises:
        Whatever `cloudpickle.dumps` raises for an object it cannot pickle.
    """
    by_value = None if by_reference else frozenset(cloudpickle.list_registry_pickle_by_value())
    found = list(record_collections(obj) if collections is None else collections)
    sample = [r for c in found for r in islice(_records_of(c), SAMPLE_RECORDS)]
    try:
        memo_size = len(pickle.dumps(sample, PICKLE_PROTOCOL))
        fast_size = len(_dump_fast(sample, by_value, memo_size * SHARING_RATIO_MAX + 64))
        per_record = fast_size / len(sample) if sample else 0.0
        total = sum(len(c) for c in found if isinstance(c, Sized))
        return _dump_fast(obj, by_value, GROWTH_SLACK * per_record * total + CAP_SLACK_BYTES)
    except Exception:  # a cycle, sharing, something by value, or unpicklable: the memo form decides
        pass
    return _dump_with_memo(obj, by_reference)  # outside the handler: its errors are not chained to it


def record_collections(obj: Any) -> list[Any]:
    """The record collections `dumps_records` samples in ``obj``.

    A list is one; a dict's items are one; an object with a ``record_collections()`` method (a
    task, its inputs, a task result) names its own.
    """
    if isinstance(obj, list | dict):
        return [obj]
    named = getattr(obj, "record_collections", None)
    return list(named()) if callable(named) else []


def _records_of(collection: Any) -> Iterable[Any]:
    return collection.items() if isinstance(collection, dict) else collection


def _dump_fast(obj: Any, by_value_modules: frozenset[str] | None, cap_bytes: float) -> bytes:
    buf = _CappedBuffer(cap_bytes)
    _FastPickler(buf, by_value_modules).dump(obj)
    return buf.getvalue()


def _dump_with_memo(obj: Any, by_reference: bool) -> bytes:
    if by_reference:
        try:
            return pickle.dumps(obj, PICKLE_PROTOCOL)
        except Exception:  # what only cloudpickle can write (a lambda in a record)
            pass
    data: bytes = cloudpickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    return data
