"""The checkpoint package's errors: one root, `CheckpointError`, and a subclass per way things fail.

Misuse errors also subclass ValueError; "already there" errors also subclass FileExistsError so callers
that only know the standard library can still catch them.
"""

from __future__ import annotations

from wal.errors import UnsupportedStorageError as _WALUnsupportedStorageError


class CheckpointError(Exception):
    """Root of every error raised by the checkpoint package."""


class CheckpointValueError(CheckpointError, ValueError):
    """A caller passed a bad value (names the value and what was expected)."""


class UnsupportedStorageError(CheckpointValueError, _WALUnsupportedStorageError):
    """No storage is registered for the URL's protocol (the message lists the supported ones)."""


class AlreadyPublishedError(CheckpointError, FileExistsError):
    """A create-once publish found the name already taken.

    `identical` is true when the existing bytes equal the bytes that were being published.
    """

    def __init__(self, message: str, *, identical: bool = False) -> None:
        super().__init__(message)
        self.identical = identical


class PublishError(CheckpointError, OSError):
    """A publish failed and nothing was published under the name."""


class CorruptCheckpointError(CheckpointError):
    """Stored bytes fail their frame, length or checksum validation."""


class CheckpointSignatureError(CorruptCheckpointError):
    """A checkpoint is unsigned when a key is required, or its signature does not verify."""


class CheckpointNotCommittedError(CheckpointError):
    """An RDD data checkpoint directory has no commit marker."""


class NoValidCheckpointError(CheckpointError):
    """Checkpoint files exist but none of them is valid."""


class FingerprintMismatchError(CheckpointError):
    """A checkpoint was written by a different pipeline than the one restoring it."""


class DriverLeaseError(CheckpointError):
    """Another live driver holds the checkpoint directory, or this driver has been fenced."""


class CheckpointQueueFullError(CheckpointError):
    """The metadata checkpoint writer could not accept a checkpoint within its timeout."""


class AlreadyCommittedError(CheckpointError, FileExistsError):
    """A sink batch was already recorded in the commit log; `existing` is that record (or None)."""

    def __init__(self, message: str, existing: object = None) -> None:
        super().__init__(message)
        self.existing = existing
