"""Build-time checks of DStream method arguments, so a bad value fails where it is written.

PySpark checks none of these until a batch runs (a non-callable map function, `repartition(0)`),
which turns a typo into a job failure minutes later. Every valid PySpark argument is still accepted.
"""

from __future__ import annotations

from typing import Any

from dstream.errors import DStreamValueError


def check_callable(method: str, name: str, value: Any, *, optional: bool = False) -> None:
    """Raise TypeError unless `value` is callable (or None when `optional`)."""
    if value is None and optional:
        return
    if not callable(value):
        expected = "a callable or None" if optional else "a callable"
        raise TypeError(f"{method}: {name} must be {expected}, got {value!r} ({type(value).__name__})")


def check_count(method: str, name: str, value: Any, *, minimum: int, optional: bool = False) -> None:
    """Raise DStreamValueError unless `value` is an int >= `minimum` (or None when `optional`)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        suffix = " or None" if optional else ""
        raise DStreamValueError(f"{method}: {name} must be an int >= {minimum}{suffix}, got {value!r}")


def check_partitions(method: str, value: Any, *, optional: bool = True) -> None:
    """`numPartitions`: a positive int (None means the default parallelism where allowed)."""
    check_count(method, "numPartitions", value, minimum=1, optional=optional)
