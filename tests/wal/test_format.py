"""The byte format (v2, and v1 still read): golden files, hand-built vectors, torn-tail vs corruption."""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wal.format import (
    FILE_HEADER_BYTES,
    FRAME_HEADER_BYTES,
    DamageKind,
    Frame,
    decode_frame,
    encode_file_header,
    encode_frame,
    encode_v1_file_header,
    iter_frames,
    scan,
    summarize,
)

GOLDEN_V1 = Path(__file__).parent / "golden" / "v1-three-records.bin"
GOLDEN = Path(__file__).parent / "golden" / "v2-three-records.bin"
GOLDEN_RECORDS = [(b"", 0), (b"hello", 1_700_000_000_000), (bytes(range(256)) + b"end", 2**40)]


def hand_built_frame(payload: bytes, time_ms: int) -> bytes:
    """The frame layout transcribed from the spec, independently of encode_frame."""
    fields = struct.pack(">I", len(payload)) + struct.pack(">q", time_ms)
    fields += struct.pack(">I", crc32c.crc32c(payload))
    return struct.pack(">I", crc32c.crc32c(fields)) + fields + payload


def test_crc32c_is_castagnoli() -> None:
    assert crc32c.crc32c(b"123456789") == 0xE3069283  # the standard check value


def test_file_header_matches_the_spec() -> None:
    body = b"\x89DSWAL\r\n" + b"\x00\x02" + b"\x00\x00" + b"\x00"
    assert encode_file_header() == body + struct.pack(">I", crc32c.crc32c(body))
    keyed = b"\x89DSWAL\r\n" + b"\x00\x02" + b"\x00\x01" + b"\x02k1"
    assert encode_file_header("k1") == keyed + struct.pack(">I", crc32c.crc32c(keyed))
    v1 = b"\x89DSWAL\r\n" + b"\x00\x01" + b"\x00\x00"
    assert encode_v1_file_header() == v1 + struct.pack(">I", crc32c.crc32c(v1))


def test_frames_match_the_spec() -> None:
    for payload, time_ms in GOLDEN_RECORDS:
        assert encode_frame(payload, time_ms) == hand_built_frame(payload, time_ms)


def test_golden_file_decodes_and_encoder_still_produces_it() -> None:
    golden = GOLDEN.read_bytes()
    result = scan(golden)
    assert result.damage is None
    assert [(bytes(f.payload), f.time_ms) for f in result.frames] == GOLDEN_RECORDS
    assert encode_file_header() + b"".join(encode_frame(p, t) for p, t in GOLDEN_RECORDS) == golden


def test_the_v1_golden_file_is_still_read() -> None:
    golden = GOLDEN_V1.read_bytes()
    result = scan(golden)
    assert result.damage is None
    assert [(bytes(f.payload), f.time_ms) for f in result.frames] == GOLDEN_RECORDS
    assert encode_v1_file_header() + b"".join(encode_frame(p, t) for p, t in GOLDEN_RECORDS) == golden
    assert GOLDEN.read_bytes()[FILE_HEADER_BYTES:] == golden[16:]  # unkeyed v2 frames are v1's


def golden_with(n: int) -> bytes:
    return encode_file_header() + b"".join(encode_frame(p, t) for p, t in GOLDEN_RECORDS[:n])


def test_every_cut_inside_the_last_record_is_torn_and_keeps_the_others() -> None:
    full = golden_with(3)
    last_start = len(golden_with(2))
    for size in range(last_start + 1, len(full)):
        result = scan(full[:size])
        assert result.damage is not None and result.damage.kind is DamageKind.TORN, size
        assert result.damage.offset == last_start
        assert [bytes(f.payload) for f in result.frames] == [p for p, _ in GOLDEN_RECORDS[:2]]


def test_every_cut_inside_the_file_header_is_torn_at_zero() -> None:
    for size in range(FILE_HEADER_BYTES):
        damage = scan(encode_file_header()[:size]).damage
        assert damage is not None and damage.kind is DamageKind.TORN and damage.offset == 0, size
    assert scan(encode_file_header()).damage is None  # a header alone is an empty, valid file


def test_zero_filled_tail_is_torn_but_garbage_is_corrupt() -> None:
    base = golden_with(2)
    zeros = scan(base + bytes(64)).damage
    assert zeros is not None and zeros.kind is DamageKind.TORN and zeros.offset == len(base)
    garbage = scan(base + b"\x01" * 64).damage
    assert garbage is not None and garbage.kind is DamageKind.CORRUPT and garbage.offset == len(base)


def test_a_wrong_magic_or_version_is_corrupt() -> None:
    header = bytearray(encode_file_header())
    header[0] = ord("X")
    assert scan(bytes(header)).damage is not None
    body = b"\x89DSWAL\r\n" + b"\x00\x03" + b"\x00\x00" + b"\x00"
    future = body + struct.pack(">I", crc32c.crc32c(body))
    damage = scan(future).damage
    assert damage is not None and damage.kind is DamageKind.CORRUPT and "version 3" in damage.reason


def power_cut_frame(payload: bytes, time_ms: int, landed: bytes) -> bytes:
    """A frame whose header (for `payload`) reached the disk but whose payload pages read back as `landed`."""
    assert len(landed) == len(payload) and landed != payload
    return hand_built_frame(payload, time_ms)[:FRAME_HEADER_BYTES] + landed


POWER_CUT_PAYLOAD = b"never acknowledged " * 20
POWER_CUT_SHAPES = {
    "header ok, payload zeroed at EOF": bytes(len(POWER_CUT_PAYLOAD)),
    "payload garbage at EOF": bytes((7 * i + 1) % 256 for i in range(len(POWER_CUT_PAYLOAD))),
}


@pytest.mark.parametrize("shape", sorted(POWER_CUT_SHAPES))
def test_a_final_frame_with_a_bad_payload_ending_at_eof_is_torn(shape: str) -> None:
    base = golden_with(2)
    result = scan(base + power_cut_frame(POWER_CUT_PAYLOAD, 5, POWER_CUT_SHAPES[shape]))
    assert result.damage is not None and result.damage.kind is DamageKind.TORN
    assert result.damage.offset == len(base)
    assert [(bytes(f.payload), f.time_ms) for f in result.frames] == GOLDEN_RECORDS[:2]


@pytest.mark.parametrize("shape", sorted(POWER_CUT_SHAPES))
def test_a_bad_payload_with_anything_after_it_is_corrupt(shape: str) -> None:
    base = golden_with(1)
    bad = power_cut_frame(POWER_CUT_PAYLOAD, 5, POWER_CUT_SHAPES[shape])
    for after in (hand_built_frame(b"later", 6), b"\x00", b"\x01"):
        damage = scan(base + bad + after).damage
        assert damage is not None and damage.kind is DamageKind.CORRUPT, after
        assert damage.offset == len(base) and damage.reason == "payload CRC mismatch"


def last_payload_bits(data: bytes) -> range:
    """The bit positions of the final frame's payload in the golden file."""
    last_payload_start = len(data) - len(GOLDEN_RECORDS[-1][0])
    return range(last_payload_start * 8, len(data) * 8)


@pytest.mark.parametrize("golden_file", [GOLDEN, GOLDEN_V1], ids=["v2", "v1"])
@settings(max_examples=300, deadline=None)
@given(fraction=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_any_single_bit_flip_is_caught_never_a_wrong_record(golden_file: Path, fraction: float) -> None:
    golden = golden_file.read_bytes()
    bit = int(fraction * len(golden) * 8)
    damaged = bytearray(golden)
    damaged[bit // 8] ^= 1 << (bit % 8)
    result = scan(bytes(damaged))
    good = [(bytes(f.payload), f.time_ms) for f in result.frames]
    assert result.damage is not None
    if bit in last_payload_bits(golden):
        # Indistinguishable from a power cut mid-append: the final record is dropped, the rest kept.
        last_frame = len(golden) - len(encode_frame(*GOLDEN_RECORDS[-1]))
        assert result.damage.kind is DamageKind.TORN and result.damage.offset == last_frame
        assert good == GOLDEN_RECORDS[:2]
    else:
        assert result.damage.kind is DamageKind.CORRUPT
        assert result.damage.offset <= bit // 8
        assert good == GOLDEN_RECORDS[: len(good)]


@settings(max_examples=100, deadline=None)
@given(payload=st.binary(max_size=2000), time_ms=st.integers(min_value=0, max_value=2**63 - 1))
def test_frames_round_trip(payload: bytes, time_ms: int) -> None:
    frame = encode_frame(payload, time_ms)
    assert len(frame) == FRAME_HEADER_BYTES + len(payload)
    decoded = decode_frame(frame, 0)
    assert isinstance(decoded, Frame)
    assert bytes(decoded.payload) == payload and decoded.time_ms == time_ms


def test_a_length_over_the_limit_is_never_allocated() -> None:
    fields = struct.pack(">Iq", 2**31, 0) + struct.pack(">I", 0)
    frame = struct.pack(">I", crc32c.crc32c(fields)) + fields
    damage = scan(encode_file_header() + frame + b"x" * 10).damage
    assert damage is not None and damage.kind is DamageKind.CORRUPT and "RECORD_BYTES_MAX" in damage.reason


def test_encode_refuses_an_oversized_payload() -> None:
    class Huge(bytes):
        def __len__(self) -> int:
            return 2**31

    with pytest.raises(ValueError, match="RECORD_BYTES_MAX"):
        encode_frame(Huge(), 0)


class CountingSource:
    """A ByteSource that counts the bytes it hands out."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read_bytes = 0

    @property
    def size(self) -> int:
        return len(self.data)

    def read_at(self, offset: int, length: int) -> bytes:
        chunk = self.data[offset : offset + length]
        self.read_bytes += len(chunk)
        return chunk


def test_frames_are_read_one_at_a_time_not_the_whole_file() -> None:
    payload = b"p" * 1000
    source = CountingSource(encode_file_header() + encode_frame(payload, 1) * 500)
    frames = iter_frames(source)
    first = next(frames)
    assert isinstance(first, Frame) and bytes(first.payload) == payload
    assert source.read_bytes == FILE_HEADER_BYTES + FRAME_HEADER_BYTES + len(payload)
    summary = summarize(CountingSource(source.data))
    assert (summary.records, summary.payload_bytes, summary.damage) == (500, 500_000, None)
    assert (summary.min_time_ms, summary.max_time_ms) == (1, 1)
