"""RDD data checkpoints on every backend: parts, commit marker, corruption, idempotence, signatures."""

from __future__ import annotations

import hashlib
import hmac
import pickle
import struct
from pathlib import Path

import crc32c
import pytest

from checkpoint import rdd_data
from checkpoint.envelope import SigningKey
from checkpoint.errors import (
    AlreadyPublishedError,
    CheckpointNotCommittedError,
    CheckpointSignatureError,
    CheckpointValueError,
    CorruptCheckpointError,
)
from tests.support.s3servers import StorageTarget

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_KEY = SigningKey("golden-key", b"golden-secret")


def _write_all(target: StorageTarget, payloads: list[bytes]) -> str:
    d = target.child("rdd/7/1000").url
    for i, p in enumerate(payloads):
        rdd_data.write_part(d, i, p, storage_options=target.storage_options)
    return d


def test_write_commit_read_round_trip(storage: StorageTarget) -> None:
    payloads = [pickle.dumps(list(range(i * 10)), protocol=5) for i in range(3)]
    d = _write_all(storage, payloads)
    so = storage.storage_options
    assert not rdd_data.is_committed(d, storage_options=so)
    rdd_data.commit(d, 3, storage_options=so)
    assert rdd_data.is_committed(d, storage_options=so)
    assert rdd_data.committed_partitions(d, storage_options=so) == 3
    assert [rdd_data.read_part(d, i, storage_options=so) for i in range(3)] == payloads


def test_commit_refuses_missing_part(storage: StorageTarget) -> None:
    d = storage.child("rdd/1/2000").url
    so = storage.storage_options
    rdd_data.write_part(d, 0, b"a", storage_options=so)
    rdd_data.write_part(d, 2, b"c", storage_options=so)
    with pytest.raises(CheckpointNotCommittedError, match=r"\[1\]"):
        rdd_data.commit(d, 3, storage_options=so)
    assert not rdd_data.is_committed(d, storage_options=so)
    with pytest.raises(CheckpointNotCommittedError):
        rdd_data.committed_partitions(d, storage_options=so)


def test_rewrite_of_existing_part_is_idempotent(storage: StorageTarget) -> None:
    d = _write_all(storage, [b"same"])
    so = storage.storage_options
    rdd_data.write_part(d, 0, b"same", storage_options=so)
    # A re-run task may produce different bytes (e.g. different pickling); the first valid part stays.
    rdd_data.write_part(d, 0, b"other", storage_options=so)
    assert rdd_data.read_part(d, 0, storage_options=so) == b"same"


def test_corrupt_part_is_detected_and_rewrite_repairs_it(storage: StorageTarget) -> None:
    d = _write_all(storage, [b"payload-bytes"])
    so = storage.storage_options
    fs = storage.filesystem()
    path = storage.child("rdd/7/1000/part-00000").url
    raw = bytearray(fs.cat_file(path))
    raw[-1] ^= 0xFF
    fs.pipe_file(path, bytes(raw))
    with pytest.raises(CorruptCheckpointError, match="CRC32C"):
        rdd_data.read_part(d, 0, storage_options=so)
    rdd_data.write_part(d, 0, b"payload-bytes", storage_options=so)
    assert rdd_data.read_part(d, 0, storage_options=so) == b"payload-bytes"


def test_commit_is_idempotent_but_refuses_other_count(storage: StorageTarget) -> None:
    d = _write_all(storage, [b"x", b"y"])
    so = storage.storage_options
    rdd_data.commit(d, 2, storage_options=so)
    rdd_data.commit(d, 2, storage_options=so)
    with pytest.raises(AlreadyPublishedError, match="2 partitions"):
        rdd_data.commit(d, 1, storage_options=so)


def test_delete_removes_marker_and_parts(storage: StorageTarget) -> None:
    d = _write_all(storage, [b"x"])
    so = storage.storage_options
    rdd_data.commit(d, 1, storage_options=so)
    rdd_data.delete(d, storage_options=so)
    assert not rdd_data.is_committed(d, storage_options=so)
    with pytest.raises(CorruptCheckpointError, match="missing"):
        rdd_data.read_part(d, 0, storage_options=so)
    rdd_data.delete(d, storage_options=so)  # missing: not an error


def test_write_part_is_picklable_for_tasks(storage: StorageTarget) -> None:
    fn = pickle.loads(pickle.dumps(rdd_data.write_part))
    d = storage.child("rdd/3/5").url
    fn(d, 0, b"from-a-worker", storage_options=storage.storage_options)
    assert rdd_data.read_part(d, 0, storage_options=storage.storage_options) == b"from-a-worker"


def test_part_frame_matches_spec() -> None:
    payload = b"hello"
    expected = b"DSRD" + struct.pack("<HHQI", 2, 0, 5, crc32c.crc32c(payload)) + payload
    assert rdd_data.encode_part(payload) == expected
    assert rdd_data.decode_part(expected) == payload
    head = b"DSRD" + struct.pack("<HHQI", 2, 1, 5, crc32c.crc32c(payload)) + payload + b"\x02k1"
    signed = head + hmac.new(b"s", head, hashlib.sha256).digest()
    assert rdd_data.encode_part(payload, SigningKey("k1", b"s")) == signed
    assert rdd_data.decode_part(signed, key=SigningKey("k1", b"s")) == payload


def test_golden_parts_decode_and_the_encoder_still_produces_them() -> None:
    v1 = (GOLDEN / "rdd-part-v1.bin").read_bytes()
    assert rdd_data.decode_part(v1) == b"\x80\x05partition"
    signed = (GOLDEN / "rdd-part-v2-signed.bin").read_bytes()
    assert rdd_data.encode_part(b"partition", GOLDEN_KEY) == signed
    assert rdd_data.decode_part(signed, key=GOLDEN_KEY) == b"partition"
    assert rdd_data.decode_part(signed) == b"partition"  # no key: read, HMAC unchecked
    unsigned = (GOLDEN / "rdd-part-v2-unsigned.bin").read_bytes()
    assert rdd_data.encode_part(b"partition") == unsigned


@pytest.mark.parametrize(
    ("filename", "key", "message"),
    [
        ("rdd-part-v1.bin", GOLDEN_KEY, "unsigned"),
        ("rdd-part-v2-unsigned.bin", GOLDEN_KEY, "unsigned"),
        ("rdd-part-v2-signed.bin", SigningKey("other-key", b"golden-secret"), "key id 'golden-key'"),
        ("rdd-part-v2-signed.bin", SigningKey("golden-key", b"guessed"), "does not verify"),
    ],
)
def test_with_a_key_an_unsigned_or_foreign_part_is_refused_naming_it(
    filename: str, key: SigningKey, message: str
) -> None:
    data = (GOLDEN / filename).read_bytes()
    with pytest.raises(CheckpointSignatureError, match=f"{filename}: .*{message}"):
        rdd_data.decode_part(data, filename, key)


def test_a_tampered_signed_payload_is_refused_even_with_its_crc_fixed() -> None:
    signed = bytearray((GOLDEN / "rdd-part-v2-signed.bin").read_bytes())
    signed[20:29] = b"PARTITION"
    signed[16:20] = struct.pack("<I", crc32c.crc32c(b"PARTITION"))
    with pytest.raises(CheckpointSignatureError, match="does not verify"):
        rdd_data.decode_part(bytes(signed), key=GOLDEN_KEY)


def test_read_part_uses_the_environment_key(storage: StorageTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    d = storage.child("rdd/3/9").url
    so = storage.storage_options
    rdd_data.write_part(d, 0, b"unsigned", storage_options=so, key=None)
    monkeypatch.setenv("DSTREAM_CHECKPOINT_KEY", "env-secret")
    with pytest.raises(CheckpointSignatureError, match="part-00000: unsigned"):
        rdd_data.read_part(d, 0, storage_options=so)
    rdd_data.write_part(d, 1, b"signed", storage_options=so)
    assert rdd_data.read_part(d, 1, storage_options=so) == b"signed"
    rdd_data.write_part(d, 0, b"unsigned", storage_options=so)  # a re-run task replaces what it cannot read
    assert rdd_data.read_part(d, 0, storage_options=so) == b"unsigned"
    rdd_data.commit(d, 2, storage_options=so)  # signed parts pass the commit's header check
    monkeypatch.delenv("DSTREAM_CHECKPOINT_KEY")
    assert rdd_data.read_part(d, 1, storage_options=so) == b"signed"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:10], "shorter"),
        (lambda b: b"XXXX" + b[4:], "magic"),
        (lambda b: b[:4] + b"\x03\x00" + b[6:], "version"),
        (lambda b: b[:6] + b"\x02\x00" + b[8:], "flags"),
        (lambda b: b[:6] + b"\x01\x00" + b[8:], "plus a signature"),
        (lambda b: b + b"!", "header says"),
        (lambda b: b[:-1], "header says"),
    ],
)
def test_decode_rejects_malformed_frames(mutate: object, message: str) -> None:
    good = rdd_data.encode_part(b"hello")
    with pytest.raises(CorruptCheckpointError, match=message):
        rdd_data.decode_part(mutate(good))  # type: ignore[operator]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_bad_index_is_a_value_error(bad: object) -> None:
    with pytest.raises(CheckpointValueError, match=repr(bad).replace(".", r"\.")):
        rdd_data.part_name(bad)  # type: ignore[arg-type]
