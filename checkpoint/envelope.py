"""The metadata checkpoint envelope: an inspectable JSON part, an opaque blob, a checksum, a signature.

Byte format, version 1 (integers little-endian)::

    offset        size  field
    0             4     magic b"DSMC"
    4             2     format version (1)
    6             2     flags: bit 0 = signed; every other bit must be 0
    8             4     J, length of the JSON part
    12            J     JSON part: one UTF-8 JSON object (batch times, streams, references, ...)
    12+J          8     B, length of the blob
    20+J          B     blob: the cloudpickled DStreamGraph (opaque here; never unpickled here)
    if signed:
    20+J+B        1     K, length of the key id (1..255)
    21+J+B        K     key id, ASCII
    21+J+B+K      32    HMAC-SHA256 under the key, over every preceding byte
    always:
    size-4        4     CRC32C of every preceding byte

Validity rule: the magic, version and flags are known, the lengths account for exactly the file's
size, and the CRC32C matches. Then the signature rule: when the reader holds a key, the file must be
signed with that key id and the HMAC must verify (an unsigned or tampered file is refused with
`CheckpointSignatureError`); without a key a signed file is returned marked "unverified". Decoding
only parses JSON and slices bytes, so inspecting a checkpoint never runs pickled code, and a file that
fails these checks is refused before any caller can unpickle its blob.

The key comes from `DSTREAM_CHECKPOINT_KEY` (its UTF-8 bytes); its id from `DSTREAM_CHECKPOINT_KEY_ID`,
or else "sha256-" plus 12 hex digits of the key's SHA-256, so rotating keys gives a clear
"signed with key id X, have Y" error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import crc32c

from checkpoint.errors import CheckpointSignatureError, CheckpointValueError, CorruptCheckpointError

MAGIC = b"DSMC"
FORMAT_VERSION = 1
FLAG_SIGNED = 0x1
ENV_KEY = "DSTREAM_CHECKPOINT_KEY"
ENV_KEY_ID = "DSTREAM_CHECKPOINT_KEY_ID"

_HEAD = struct.Struct("<4sHHI")  # magic, version, flags, J
_BLOB_LEN = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_MAC_SIZE = 32

SignatureStatus = Literal["verified", "unsigned", "unverified"]


@dataclass(frozen=True)
class SigningKey:
    """An HMAC-SHA256 key and the id written next to signatures made with it."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.secret:
            raise CheckpointValueError("signing key secret must be non-empty bytes")
        if not self.key_id.isascii() or not 1 <= len(self.key_id) <= 255:
            raise CheckpointValueError(f"key id must be 1-255 ASCII characters, got {self.key_id!r}")

    @staticmethod
    def from_secret(secret: bytes, key_id: str | None = None) -> SigningKey:
        """A key whose id defaults to a short digest of the secret."""
        return SigningKey(key_id or "sha256-" + hashlib.sha256(secret).hexdigest()[:12], secret)


def signing_key_from_env(environ: Mapping[str, str] | None = None) -> SigningKey | None:
    """The key from `DSTREAM_CHECKPOINT_KEY` (and optional `..._KEY_ID`), or None if unset."""
    env = os.environ if environ is None else environ
    secret = env.get(ENV_KEY)
    if not secret:
        return None
    return SigningKey.from_secret(secret.encode(), env.get(ENV_KEY_ID) or None)


KeyChoice = SigningKey | None | Literal["env"]


def resolve_key(key: KeyChoice) -> SigningKey | None:
    """`"env"` means the key from DSTREAM_CHECKPOINT_KEY (or none if unset)."""
    return signing_key_from_env() if key == "env" else key


@dataclass(frozen=True)
class Envelope:
    """A decoded envelope: the JSON part, the blob bytes, and what the signature check found."""

    json_part: dict[str, Any]
    blob: bytes = field(repr=False)
    signature: SignatureStatus
    key_id: str | None = None


def encode(json_part: Mapping[str, Any], blob: bytes, key: SigningKey | None = None) -> bytes:
    """Build an envelope; signed when `key` is given.

    Raises:
        CheckpointValueError: the JSON part is not JSON-serializable.
    """
    try:
        text = json.dumps(dict(json_part), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointValueError(f"checkpoint JSON part is not plain JSON: {exc}") from exc
    body = text.encode()
    flags = FLAG_SIGNED if key is not None else 0
    out = _HEAD.pack(MAGIC, FORMAT_VERSION, flags, len(body)) + body + _BLOB_LEN.pack(len(blob)) + blob
    if key is not None:
        kid = key.key_id.encode("ascii")
        out += bytes([len(kid)]) + kid
        out += hmac.new(key.secret, out, hashlib.sha256).digest()
    return out + _CRC.pack(crc32c.crc32c(out))


def _parse_layout(data: bytes, where: str) -> tuple[bytes, bytes, bytes | None, int]:
    """Check framing and CRC; return (JSON bytes, blob, signature section or None, blob end)."""
    if len(data) < _HEAD.size + _BLOB_LEN.size + _CRC.size:
        raise CorruptCheckpointError(f"{where}: {len(data)} bytes is too short for an envelope")
    magic, version, flags, json_len = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise CorruptCheckpointError(f"{where}: magic {magic!r}, expected {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise CorruptCheckpointError(f"{where}: envelope version {version}, expected {FORMAT_VERSION}")
    if flags & ~FLAG_SIGNED:
        raise CorruptCheckpointError(f"{where}: unknown flags {flags:#x}")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if crc32c.crc32c(data[: -_CRC.size]) != crc:
        raise CorruptCheckpointError(f"{where}: CRC32C mismatch (torn or corrupted file)")
    pos = _HEAD.size + json_len
    if pos + _BLOB_LEN.size > len(data) - _CRC.size:
        raise CorruptCheckpointError(f"{where}: JSON length {json_len} runs past the end")
    (blob_len,) = _BLOB_LEN.unpack_from(data, pos)
    blob_start = pos + _BLOB_LEN.size
    end = blob_start + blob_len
    signature_section = data[end : len(data) - _CRC.size]
    if end > len(data) - _CRC.size or (not flags and signature_section):
        raise CorruptCheckpointError(f"{where}: blob length {blob_len} does not match the file size")
    return data[_HEAD.size : pos], data[blob_start:end], signature_section if flags else None, end


def _check_signature(
    data: bytes, section: bytes | None, end: int, key: SigningKey | None, where: str
) -> tuple[SignatureStatus, str | None]:
    if section is None:
        if key is not None:
            raise CheckpointSignatureError(f"{where}: unsigned, but key {key.key_id!r} requires a signature")
        return "unsigned", None
    kid_len = section[0] if section else 0
    if kid_len == 0 or len(section) != 1 + kid_len + _MAC_SIZE:
        raise CorruptCheckpointError(f"{where}: malformed signature section")
    key_id = section[1 : 1 + kid_len].decode("ascii", errors="replace")
    if key is None:
        return "unverified", key_id
    if key_id != key.key_id:
        raise CheckpointSignatureError(f"{where}: signed with key id {key_id!r}, have {key.key_id!r}")
    signed_end = end + 1 + kid_len
    expected = hmac.new(key.secret, data[:signed_end], hashlib.sha256).digest()
    if not hmac.compare_digest(expected, section[1 + kid_len :]):
        raise CheckpointSignatureError(f"{where}: HMAC-SHA256 signature does not verify (tampered?)")
    return "verified", key_id


def decode(data: bytes, *, key: SigningKey | None = None, where: str = "checkpoint") -> Envelope:
    """Validate an envelope and split it; never unpickles anything.

    Args:
        data: the file's bytes.
        key: when given, a valid signature with this key is required.
        where: names the file in error messages.

    Raises:
        CorruptCheckpointError: framing, length or CRC32C failure, or a JSON part that is not an object.
        CheckpointSignatureError: unsigned while a key is required, wrong key id, or a bad HMAC.
    """
    body, blob, section, end = _parse_layout(bytes(data), where)
    status, key_id = _check_signature(bytes(data), section, end, key, where)
    try:
        parsed = json.loads(body.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptCheckpointError(f"{where}: JSON part does not parse: {exc}") from exc
    if not isinstance(parsed, dict):
        raise CorruptCheckpointError(f"{where}: JSON part is a {type(parsed).__name__}, expected an object")
    return Envelope(parsed, blob, status, key_id)
