"""The engine's error root. Misuse errors also subclass ValueError or TypeError (STYLE.md)."""

from __future__ import annotations


class DStreamError(Exception):
    """Root of every error the engine raises on its own account."""


class DStreamValueError(DStreamError, ValueError):
    """A value given to the engine is not one it accepts; the message names it."""


class DStreamStateError(DStreamError, RuntimeError):
    """An operation is not valid in the current lifecycle state (e.g. start() twice)."""


class CleanupDeferredError(DStreamStateError):
    """A cleanup cannot run yet (a receiver has not rebuilt its state); nothing was cleaned, retry later."""


class JobFailedError(DStreamError):
    """A batch job raised; the original exception is the __cause__ and its message is kept."""


class ReceiverGivenUpError(DStreamError):
    """A receiver failed `restarts_max` consecutive starts and was given up; the application fails with
    it. The last start's error, if any, is the __cause__."""
