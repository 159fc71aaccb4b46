"""The quarantine file format (v1, golden file), its record tags, and the store's create-once rule."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkpoint.errors import CorruptCheckpointError
from checkpoint.quarantine import (
    Quarantine,
    QuarantinedBatch,
    decode,
    decode_record,
    encode,
    encode_record,
)

GOLDEN = Path(__file__).parent / "golden" / "quarantine-v1.json"
ERROR = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: poison 666\n'
RECORDS: dict[str, list[Any]] = {
    "0": ["a", 1, 2.5, True, None, ("k", 1), [1, 2], {"x": b"\x00\xff"}, float("-inf"), {1, 2}],
    "1": [],
}
GOLDEN_BATCH = QuarantinedBatch(3000, ERROR, 3, RECORDS)

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    # nan is tagged too, but nan != nan: tested by itself below
    lambda inner: (
        st.lists(inner, max_size=3).map(tuple)
        | st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


def test_golden_file_is_format_v1() -> None:
    assert encode(GOLDEN_BATCH) == GOLDEN.read_bytes()
    batch = decode(GOLDEN.read_bytes(), "golden")
    assert batch.batch_ms == 3000 and batch.attempts == 3 and batch.error == ERROR
    assert batch.records["0"][:9] == RECORDS["0"][:9]
    assert batch.records["0"][9] == {"$repr": "{1, 2}"}  # not JSON: reported, counted, not restorable
    assert batch.counts() == {"0": 10, "1": 0}
    assert batch.error_first_line() == "ValueError: poison 666"


@given(plain)
def test_records_round_trip(record: Any) -> None:
    assert decode_record(encode_record(record)) == record


def test_non_finite_floats_round_trip_through_json() -> None:
    for value in (float("inf"), float("-inf")):
        assert decode_record(json.loads(json.dumps(encode_record(value)))) == value
    assert math.isnan(decode_record(json.loads(json.dumps(encode_record(float("nan"))))))


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"format": "dstream-commit", "version": 1}',
        b'{"format": "dstream-quarantine", "version": 2, "batch_ms": 1, "attempts": 1, "error": "", '
        b'"streams": {}}',
        b'{"format": "dstream-quarantine", "version": 1, "batch_ms": 1, "attempts": 1, "error": "", '
        b'"streams": {"0": {"count": 2, "records": [1]}}}',
        b'{"format": "dstream-quarantine", "version": 1, "batch_ms": 1, "attempts": 1, "error": "", '
        b'"streams": {"0": {"count": 1, "records": [{"$evil": 1}]}}}',
    ],
)
def test_anything_else_is_refused_naming_the_file(raw: bytes) -> None:
    with pytest.raises(CorruptCheckpointError, match=r"where\.json: not a quarantine record"):
        decode(raw, "where.json")


def test_put_is_create_once_and_drop_is_for_good(tmp_path: Path) -> None:
    quarantine = Quarantine(str(tmp_path / "ckpt"))
    assert quarantine.batch_times() == [] and quarantine.get(3000) is None
    assert quarantine.put(GOLDEN_BATCH) is True
    assert quarantine.put(QuarantinedBatch(3000, "another error", 1, {"0": [1]})) is False  # kept as it was
    assert quarantine.put(QuarantinedBatch(12000, "e", 1, {})) is True
    assert quarantine.batch_times() == [3000, 12000]
    stored = quarantine.get(3000)
    assert stored is not None and stored.error == ERROR
    assert (tmp_path / "ckpt" / "quarantine" / "batch-00000000000000003000.json").is_file()
    assert quarantine.drop(3000) is True and quarantine.drop(3000) is False
    assert quarantine.batch_times() == [12000] and quarantine.get(3000) is None
