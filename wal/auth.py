"""Record authentication for the WAL: the key a log is opened with, and the per-record MAC.

Why the WAL authenticates its own records: its users (the block tracker's event log, the receiver
WALs) store pickles, and whoever can write the log's directory could otherwise plant a pickle that
runs code when the log is replayed. With a key, every frame carries a MAC that is verified before
its payload leaves the WAL, so a record not written by a holder of the key is refused, never
returned (see `wal.format` for the bytes).

The MAC is HMAC-SHA256 truncated to its first 16 bytes (128 bits): forging one record takes 2^128
guesses, and a group commit of small records pays 16 bytes per record instead of 32. The input is a
domain-separation label (so a WAL MAC is never valid as a metadata checkpoint's or a data part's
signature made with the same key), then the frame's 16 header field bytes (length, time_ms, payload
CRC32C), then the payload. The keyed HMAC state after the label is computed once per log and copied
per record, so a record costs one copy and two short SHA-256 updates.

The key is anything with a `key_id` (1-255 ASCII characters, written in the file header so a wrong
key is named in errors) and a non-empty `secret`; `checkpoint.envelope.SigningKey`, loaded from
`DSTREAM_CHECKPOINT_KEY`, is one.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

from wal.errors import WALValueError

MAC_BYTES = 16
KEY_ID_BYTES_MAX = 255
MAC_LABEL = b"dstream-wal-record-v2\x00"


class RecordKey(Protocol):
    """A secret and the id written beside what it authenticates."""

    @property
    def key_id(self) -> str: ...

    @property
    def secret(self) -> bytes: ...


class RecordAuthenticator:
    """Computes and checks record MACs under one key (thread-safe: the base state is only copied)."""

    __slots__ = ("_base", "key_id")

    def __init__(self, key: RecordKey) -> None:
        key_id, secret = getattr(key, "key_id", None), getattr(key, "secret", None)
        if not isinstance(secret, bytes) or not secret:
            raise WALValueError(f"WAL key secret must be non-empty bytes, got {type(secret).__name__}")
        if not isinstance(key_id, str) or not key_id.isascii() or not 1 <= len(key_id) <= KEY_ID_BYTES_MAX:
            raise WALValueError(f"WAL key id must be 1-{KEY_ID_BYTES_MAX} ASCII characters, got {key_id!r}")
        self.key_id = key_id
        self._base = hmac.new(secret, MAC_LABEL, hashlib.sha256)

    def mac(self, fields: bytes | memoryview, payload: bytes | memoryview) -> bytes:
        """The 16-byte MAC of a frame's header fields and payload."""
        state = self._base.copy()
        state.update(fields)
        state.update(payload)
        return state.digest()[:MAC_BYTES]

    def verify(
        self, fields: bytes | memoryview, payload: bytes | memoryview, mac: bytes | memoryview
    ) -> bool:
        """Whether `mac` is this key's MAC of the fields and payload (constant-time comparison)."""
        return hmac.compare_digest(self.mac(fields, payload), bytes(mac))


def authenticator_for(key: RecordKey | RecordAuthenticator | None) -> RecordAuthenticator | None:
    """The authenticator for `key` (None: records are not authenticated)."""
    if key is None or isinstance(key, RecordAuthenticator):
        return key
    return RecordAuthenticator(key)
