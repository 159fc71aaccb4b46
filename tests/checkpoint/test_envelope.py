"""The metadata checkpoint envelope: golden bytes, corruption detection, signature policy."""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from pathlib import Path

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkpoint.envelope import SigningKey, decode, encode, signing_key_from_env
from checkpoint.errors import CheckpointSignatureError, CheckpointValueError, CorruptCheckpointError

GOLDEN = Path(__file__).parent / "golden"
JSON_PART = {"kind": "golden", "batch_ms": 1000, "streams": ["0", "1"]}
BLOB = b"\x80\x05blob-bytes"
KEY = SigningKey("golden-key", b"golden-secret")


def _by_hand(key: SigningKey | None) -> bytes:
    """The spec in the module docstring, written out independently of `encode`."""
    body = json.dumps(JSON_PART, sort_keys=True, separators=(",", ":")).encode()
    out = b"DSMC" + struct.pack("<HHI", 1, 1 if key else 0, len(body)) + body
    out += struct.pack("<Q", len(BLOB)) + BLOB
    if key:
        out += bytes([len(key.key_id)]) + key.key_id.encode()
        out += hmac.new(key.secret, out, hashlib.sha256).digest()
    return out + struct.pack("<I", crc32c.crc32c(out))


@pytest.mark.parametrize(
    ("filename", "key"), [("envelope-v1-unsigned.bin", None), ("envelope-v1-signed.bin", KEY)]
)
def test_golden_files_match_spec_and_decode(filename: str, key: SigningKey | None) -> None:
    golden = (GOLDEN / filename).read_bytes()
    assert golden == _by_hand(key)
    assert encode(JSON_PART, BLOB, key) == golden
    env = decode(golden, key=key)
    assert env.json_part == JSON_PART and env.blob == BLOB
    assert env.signature == ("verified" if key else "unsigned")


def test_signed_file_without_key_is_unverified() -> None:
    env = decode((GOLDEN / "envelope-v1-signed.bin").read_bytes(), key=None)
    assert env.signature == "unverified" and env.key_id == "golden-key"


def test_unsigned_file_refused_when_key_required() -> None:
    with pytest.raises(CheckpointSignatureError, match="unsigned"):
        decode((GOLDEN / "envelope-v1-unsigned.bin").read_bytes(), key=KEY)


def test_wrong_key_id_and_wrong_secret_are_refused() -> None:
    signed = (GOLDEN / "envelope-v1-signed.bin").read_bytes()
    with pytest.raises(CheckpointSignatureError, match="key id 'golden-key', have 'other'"):
        decode(signed, key=SigningKey("other", b"golden-secret"))
    with pytest.raises(CheckpointSignatureError, match="does not verify"):
        decode(signed, key=SigningKey("golden-key", b"not-the-secret"))


def test_tampered_blob_with_recomputed_crc_is_refused() -> None:
    """An attacker can fix the CRC, but not the HMAC."""
    signed = bytearray((GOLDEN / "envelope-v1-signed.bin").read_bytes())
    signed[signed.index(b"blob-bytes")] ^= 0x01
    body = bytes(signed[:-4])
    forged = body + struct.pack("<I", crc32c.crc32c(body))
    with pytest.raises(CheckpointSignatureError, match="does not verify"):
        decode(forged, key=KEY)


def test_stripped_signature_is_refused_when_key_required() -> None:
    unsigned_forgery = encode(JSON_PART, b"evil pickle", None)
    with pytest.raises(CheckpointSignatureError):
        decode(unsigned_forgery, key=KEY)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), signed=st.booleans())
def test_any_single_byte_corruption_or_truncation_is_detected(data: st.DataObject, signed: bool) -> None:
    good = encode(JSON_PART, BLOB, KEY if signed else None)
    if data.draw(st.booleans(), label="truncate"):
        bad = good[: data.draw(st.integers(0, len(good) - 1), label="length")]
    else:
        pos = data.draw(st.integers(0, len(good) - 1), label="pos")
        flip = data.draw(st.integers(1, 255), label="xor")
        bad = good[:pos] + bytes([good[pos] ^ flip]) + good[pos + 1 :]
    with pytest.raises(CorruptCheckpointError):
        decode(bad, key=KEY if signed else None)


@pytest.mark.parametrize("bad_json", [{"x": object()}, {"x": float("nan")}])
def test_non_json_part_is_a_value_error(bad_json: dict[str, object]) -> None:
    with pytest.raises(CheckpointValueError, match="not plain JSON"):
        encode(bad_json, b"")


def test_key_from_env() -> None:
    assert signing_key_from_env({}) is None
    key = signing_key_from_env({"DSTREAM_CHECKPOINT_KEY": "s3cret"})
    assert key is not None and key.secret == b"s3cret"
    assert key.key_id == "sha256-" + hashlib.sha256(b"s3cret").hexdigest()[:12]
    named = signing_key_from_env({"DSTREAM_CHECKPOINT_KEY": "s", "DSTREAM_CHECKPOINT_KEY_ID": "k1"})
    assert named is not None and named.key_id == "k1"
    assert "s3cret" not in repr(key)
