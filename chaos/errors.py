"""The chaos package's errors: one root (`ChaosError`); misuse errors also subclass ValueError.

Why a hierarchy: a drill or a suite must tell "the tooling was misused or fed a file it cannot read"
(`ChaosValueError`, whose message names the value and what was expected) from an engine failure, which
is never raised as an error here but reported by the checker as a verdict.
"""

from __future__ import annotations


class ChaosError(Exception):
    """Root of every error the chaos package raises on its own account."""


class ChaosValueError(ChaosError, ValueError):
    """A value given to the chaos tooling is not one it accepts; the message names it."""


class HistoryFormatError(ChaosError):
    """A file is not a history this version reads (other format or version, or a damaged line).

    The message names the file, the line and what was found instead of what was expected.
    """
