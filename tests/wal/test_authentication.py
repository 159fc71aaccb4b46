"""Record authentication (format v2): a log opened with a key returns only records MAC'd with it.

Golden file: `golden/v2-three-records-authenticated.bin` (key id "golden-key", secret b"golden-secret").
Every refusal happens before a payload is returned, and names the file and the offset.
"""

from __future__ import annotations

import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wal
from tests.support.s3servers import StorageTarget
from tests.wal.helpers import data_files, open_log, read_bytes, rewrite
from wal.auth import MAC_BYTES, RecordAuthenticator
from wal.format import (
    AUTH_FRAME_HEADER_BYTES,
    DamageKind,
    encode_file_header,
    encode_frame,
    scan,
)

GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN = GOLDEN_DIR / "v2-three-records-authenticated.bin"
GOLDEN_RECORDS = [(b"", 0), (b"hello", 1_700_000_000_000), (bytes(range(256)) + b"end", 2**40)]


@dataclass(frozen=True)
class Key:
    key_id: str
    secret: bytes


GOLDEN_KEY = Key("golden-key", b"golden-secret")
KEY = Key("k1", b"the secret")


def forged_frame(payload: bytes, time_ms: int) -> bytes:
    """What someone without the key can write: a well-formed 36-byte frame header, CRCs right, MAC guessed."""
    fields = struct.pack(">Iq", len(payload), time_ms) + struct.pack(">I", crc32c.crc32c(payload))
    fields += bytes(MAC_BYTES)
    return struct.pack(">I", crc32c.crc32c(fields)) + fields + payload


def test_the_authenticated_golden_file_decodes_and_the_encoder_still_produces_it() -> None:
    golden = GOLDEN.read_bytes()
    auth = RecordAuthenticator(GOLDEN_KEY)
    result = scan(golden, auth)
    assert result.damage is None
    assert [(bytes(f.payload), f.time_ms) for f in result.frames] == GOLDEN_RECORDS
    expected = encode_file_header("golden-key") + b"".join(
        encode_frame(p, t, auth) for p, t in GOLDEN_RECORDS
    )
    assert expected == golden
    assert len(encode_frame(b"x", 1, auth)) == AUTH_FRAME_HEADER_BYTES + 1


def test_a_reader_without_the_key_reads_an_authenticated_file() -> None:
    result = scan(GOLDEN.read_bytes())
    assert result.damage is None
    assert [(bytes(f.payload), f.time_ms) for f in result.frames] == GOLDEN_RECORDS


def test_another_secret_under_the_same_key_id_fails_at_the_first_frame() -> None:
    result = scan(GOLDEN.read_bytes(), RecordAuthenticator(Key("golden-key", b"guessed")))
    assert result.frames == ()
    assert result.damage is not None and result.damage.kind is DamageKind.UNAUTHENTICATED
    assert result.damage.offset == len(encode_file_header("golden-key"))
    assert "does not verify" in result.damage.reason


def test_another_key_id_or_an_unkeyed_file_is_refused_as_a_whole() -> None:
    other = scan(GOLDEN.read_bytes(), RecordAuthenticator(KEY)).damage
    assert other is not None and other.kind is DamageKind.UNAUTHENTICATED and other.offset == 0
    assert "'golden-key'" in other.reason and "'k1'" in other.reason
    for name in ("v2-three-records.bin", "v1-three-records.bin"):
        damage = scan((GOLDEN_DIR / name).read_bytes(), RecordAuthenticator(KEY)).damage
        assert damage is not None and damage.kind is DamageKind.UNAUTHENTICATED and damage.offset == 0, name
        assert "not authenticated" in damage.reason


def test_a_forged_frame_with_correct_crcs_is_refused() -> None:
    golden = GOLDEN.read_bytes()
    result = scan(golden + forged_frame(b"planted", 5), RecordAuthenticator(GOLDEN_KEY))
    assert [(bytes(f.payload), f.time_ms) for f in result.frames] == GOLDEN_RECORDS
    assert result.damage is not None and result.damage.kind is DamageKind.UNAUTHENTICATED
    assert result.damage.offset == len(golden)


@settings(max_examples=300, deadline=None)
@given(fraction=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_any_single_bit_flip_of_the_authenticated_golden_file_never_yields_a_wrong_record(
    fraction: float,
) -> None:
    golden = GOLDEN.read_bytes()
    bit = int(fraction * len(golden) * 8)
    damaged = bytearray(golden)
    damaged[bit // 8] ^= 1 << (bit % 8)
    result = scan(bytes(damaged), RecordAuthenticator(GOLDEN_KEY))
    good = [(bytes(f.payload), f.time_ms) for f in result.frames]
    assert result.damage is not None
    assert good == GOLDEN_RECORDS[: len(good)]


def test_a_keyed_log_round_trips_and_a_keyless_reader_reads_it(storage: StorageTarget) -> None:
    payloads = [f"record-{i}".encode() for i in range(6)]
    with open_log(storage, rolling_interval_ms=1000, key=KEY) as log:
        handles = [log.write(p, 1000 * i) for i, p in enumerate(payloads)]
        assert [log.read(h) for h in handles] == payloads
    with open_log(storage, rolling_interval_ms=1000, key=KEY) as log:
        assert list(log.read_all()) == payloads
        assert [log.read(h) for h in handles] == payloads
    with open_log(storage, rolling_interval_ms=1000) as keyless:
        assert list(keyless.read_all()) == payloads
        assert [keyless.read(h) for h in handles] == payloads


def test_a_log_written_without_a_key_is_refused_naming_the_file(storage: StorageTarget) -> None:
    with open_log(storage) as log:
        handle = log.write(b"unkeyed", 5)
    with open_log(storage, key=KEY) as keyed:
        with pytest.raises(
            wal.RecordAuthenticationError, match=rf"{handle.path}.*offset 0.*not authenticated"
        ):
            list(keyed.read_all())
        with pytest.raises(wal.RecordAuthenticationError, match=handle.path) as info:
            keyed.read(handle)
        assert info.value.segment == handle.path


def test_a_planted_record_in_a_keyed_segment_is_refused_at_its_offset(storage: StorageTarget) -> None:
    with open_log(storage, key=KEY) as log:
        good = log.write(b"genuine", 5)
    path = data_files(storage)[-1]
    original = read_bytes(storage, path)
    rewrite(storage, path, original + forged_frame(b"planted", 6))
    planted = wal.RecordHandle(good.path, len(original), len(b"planted"))
    with open_log(storage, key=KEY) as keyed:
        with pytest.raises(wal.RecordAuthenticationError, match=rf"{good.path}.*offset {len(original)}"):
            list(keyed.read_all())
        with pytest.raises(wal.RecordAuthenticationError, match=rf"offset {len(original)}.*does not verify"):
            keyed.read(planted)
        assert keyed.read(good) == b"genuine"


def test_the_v1_golden_log_is_read_without_a_key_and_refused_with_one(tmp_path: Path) -> None:
    shutil.copytree(GOLDEN_DIR / "v1-log", tmp_path / "log")
    with wal.open_wal(str(tmp_path / "log")) as log:
        records = list(log.read_all())
    assert records
    with wal.open_wal(str(tmp_path / "log"), key=KEY) as keyed:
        with pytest.raises(wal.RecordAuthenticationError, match=r"log-0000000000-1000-61000.*version 1"):
            list(keyed.read_all())


def test_group_commit_authenticates_every_record(tmp_path: Path) -> None:
    with wal.open_wal(str(tmp_path / "log"), batched=True, key=KEY) as log:
        handles = [log.write(f"r{i}".encode(), i) for i in range(20)]
    with wal.open_wal(str(tmp_path / "log"), key=KEY) as log:
        assert [log.read(h) for h in handles] == [f"r{i}".encode() for i in range(20)]


@pytest.mark.parametrize(
    ("key", "match"), [(Key("", b"s"), "key id"), (Key("k\u00e9", b"s"), "key id"), (Key("k", b""), "secret")]
)
def test_a_malformed_key_is_refused_naming_what_is_wrong(tmp_path: Path, key: Key, match: str) -> None:
    with pytest.raises(wal.WALValueError, match=match):
        wal.open_wal(str(tmp_path / "log"), key=key)
