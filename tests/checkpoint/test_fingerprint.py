"""Code fingerprints and the differences they report."""

from __future__ import annotations

import pytest

from checkpoint.errors import CheckpointValueError, FingerprintMismatchError
from checkpoint.fingerprint import (
    CodeFingerprint,
    check_fingerprint,
    compare_fingerprints,
    fingerprint_callables,
    fingerprint_description,
)

PIPELINE = {"streams": [{"id": "0", "op": "socketTextStream"}, {"id": "1", "op": "map"}], "batch_ms": 1000}


def test_same_description_same_digest_and_no_differences() -> None:
    a = fingerprint_description(PIPELINE)
    b = fingerprint_description({"batch_ms": 1000, "streams": list(PIPELINE["streams"])})  # type: ignore[arg-type]
    assert a.digest == b.digest
    assert compare_fingerprints(a, b) == []
    check_fingerprint(a, b)


def test_differences_name_what_changed() -> None:
    old = fingerprint_description(PIPELINE)
    new = fingerprint_description(
        {
            "streams": [
                {"id": "0", "op": "socketTextStream"},
                {"id": "1", "op": "filter"},
                {"id": "2", "op": "x"},
            ]
        }
    )
    diffs = compare_fingerprints(old, new)
    assert "changed streams[1].op: 'map' -> 'filter'" in diffs
    assert "changed streams.#: 2 -> 3" in diffs
    assert "added streams[2].id = '2'" in diffs
    assert "removed batch_ms (was 1000)" in diffs
    with pytest.raises(FingerprintMismatchError, match=r"streams\[1\]\.op: 'map' -> 'filter'"):
        check_fingerprint(old, new)


def test_code_change_in_a_function_changes_the_fingerprint() -> None:
    def f1(x: int) -> int:
        return x + 1

    def f2(x: int) -> int:
        return x + 2

    def f3(x: int) -> int:
        return x + 1

    a = fingerprint_callables({"mapper": f1})
    assert compare_fingerprints(a, fingerprint_callables({"mapper": f3})) == []
    diffs = compare_fingerprints(a, fingerprint_callables({"mapper": f2}))
    assert len(diffs) == 1 and diffs[0].startswith("changed code.mapper:")


def test_digest_only_fingerprints_still_compare() -> None:
    diffs = compare_fingerprints(CodeFingerprint("a" * 64), CodeFingerprint("b" * 64))
    assert diffs == ["code digest changed: aaaaaaaaaaaa -> bbbbbbbbbbbb"]


def test_json_round_trip() -> None:
    fp = fingerprint_description(PIPELINE)
    assert CodeFingerprint.from_json(fp.to_json()) == fp


def test_non_json_description_is_refused() -> None:
    with pytest.raises(CheckpointValueError, match="'streams'"):
        fingerprint_description({"streams": object()})
