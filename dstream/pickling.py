"""Pickling lists of text records without pickle's memo, where dropping it provably changes nothing.

Pickle's memo (one table entry per object, so that an object referenced twice is written once) is
most of the cost of pickling a list of strings: 200,000 short lines take 37 ms with the memo and
4 ms without it on the benchmark machine, against about 200 ms to word-count them. Lines of text
are what textFileStream, socketTextStream and the push receiver carry, and what a task ships when
its partition was built on the driver.

For a list whose elements are all exactly `str`, or all exactly `bytes`, the memo can only merge
repeated references to one immutable string: dropping it changes no value and no behaviour, only
the size when one string is referenced many times. `dumps_records` pickles such a list in the C
pickler's fast mode (no memo) into a buffer capped at `FAST_BYTES_MAX`, which bounds that growth,
and with `pickle.dumps` when the cap is hit or the list is anything else. Exact types only: an
instance of a subclass may carry mutable attributes that two records share. Every other list
(tuples, numbers, objects) is pickled exactly as before, memo and all: detecting sharing in
general costs as much as the memo (a set of 200,000 ids takes 23 ms), and dropping it where
records share objects would copy them.

The output is ordinary pickle (protocol 5), read back with `pickle.loads`.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

PICKLE_PROTOCOL = 5
FAST_BYTES_MAX = 64 << 20


def is_flat_text(records: Any) -> bool:
    """Whether ``records`` is a list of only `str` or only `bytes` (exactly those types)."""
    if type(records) is not list:
        return False
    kinds = set(map(type, records))
    return kinds <= {str} or kinds <= {bytes}


def dumps_records(records: list[Any]) -> bytes:
    """Pickle a list of records: without the memo when `is_flat_text`, else with `pickle.dumps`.

    Raises:
        Whatever `pickle.dumps` raises for a record it cannot pickle.
    """
    packed = dumps_text(records)
    return pickle.dumps(records, PICKLE_PROTOCOL) if packed is None else packed


def dumps_text(records: Any) -> bytes | None:
    """``records`` pickled without the memo if `is_flat_text`, within `FAST_BYTES_MAX`; else None."""
    return dumps_text_in(records, records)


def dumps_text_in(whole: Any, records: Any) -> bytes | None:
    """Like `dumps_text`, for ``whole`` holding ``records`` beside values that share nothing mutable.

    The caller vouches for the rest of ``whole`` (`holds_no_shared_mutable`).
    """
    if not is_flat_text(records):
        return None
    buf = _CappedBuffer(FAST_BYTES_MAX)
    pickler = pickle.Pickler(buf, PICKLE_PROTOCOL)
    pickler.fast = True
    try:
        pickler.dump(whole)
    except _TooLarge:
        return None
    return buf.getvalue()


class _TooLarge(Exception):
    pass


class _CappedBuffer(io.BytesIO):
    """Refuses to grow past `cap_bytes` (the C pickler writes to it in frames of about 64 KiB)."""

    def __init__(self, cap_bytes: int) -> None:
        super().__init__()
        self._cap_bytes = cap_bytes

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self._cap_bytes:
            raise _TooLarge
        return super().write(data)


def holds_no_shared_mutable(obj: Any, besides: tuple[Any, ...] = ()) -> bool:
    """Whether ``obj`` is built of plain values only, with no list, dict or set reached twice.

    What makes pickling it without the memo exact. Other types (instances, bytearrays) answer False:
    the memo stays. ``besides``: containers pickled beside ``obj`` that it must not reach either.
    For small objects such as a block's metadata; the walk costs per element.
    """
    seen: set[int] = {id(x) for x in besides}
    stack = [obj]
    while stack:
        x = stack.pop()
        kind = type(x)
        if kind in _ATOMS:
            continue
        if kind is tuple or kind is frozenset:
            stack.extend(x)
            continue
        if kind not in (list, dict, set) or id(x) in seen:
            return False
        seen.add(id(x))
        stack.extend(x.items() if kind is dict else x)
    return True


_ATOMS = frozenset({str, bytes, int, float, bool, type(None)})
