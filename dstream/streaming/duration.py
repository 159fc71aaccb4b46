"""Durations at the API edge: PySpark passes seconds, the engine keeps integer milliseconds.

Kept apart so every module converts the same way and rejects the same bad values.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any

from dstream.errors import DStreamValueError


def seconds_to_ms(seconds: Any, name: str) -> int:
    """Convert a positive duration in seconds to whole milliseconds.

    Args:
        seconds: the duration as PySpark takes it (int or float seconds).
        name: the parameter's name, used in the error message.

    Raises:
        DStreamValueError: `seconds` is not a number or not positive.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise DStreamValueError(f"{name} must be a number of seconds, got {seconds!r}")
    ms = round(seconds * 1000)
    if ms <= 0:
        raise DStreamValueError(f"{name} must be a positive number of seconds, got {seconds!r}")
    return int(ms)


def ms_to_datetime(time_ms: int) -> datetime:
    """A batch time as PySpark hands it to user functions: a naive local datetime."""
    return datetime.fromtimestamp(time_ms / 1000.0)


def timestamp_to_ms(value: Any, name: str) -> int:
    """A point in time given as a datetime or as seconds since the epoch (PySpark's `slice`)."""
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DStreamValueError(f"{name} must be a datetime or seconds since the epoch, got {value!r}")
    return round(value * 1000)


def positional_arity(func: Callable[..., Any]) -> int:
    """How many positional arguments `func` accepts (2 if it takes *args).

    PySpark decides between func(rdd) and func(time, rdd) by argument count; this also
    handles bound methods and partials, which PySpark's `__code__` check does not.
    """
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 2
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in kinds)
