"""Hypothesis over whole logs on the appendable backends: every cut of the last record, random bit flips."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wal
from tests.support.s3servers import StorageTarget
from tests.wal.helpers import data_files, flip_bit, open_log, read_bytes, rewrite

payload_lists = st.lists(st.binary(min_size=0, max_size=40), min_size=1, max_size=6)
KINDS = ["local", "memory"]


def fresh(kind: str, tmp_path: Path) -> StorageTarget:
    name = uuid.uuid4().hex[:10]
    if kind == "local":
        return StorageTarget(kind, str(tmp_path / name))
    return StorageTarget(kind, f"memory://wal-damage/{name}")


def write(target: StorageTarget, payloads: list[bytes]) -> None:
    with open_log(target, fsync="never", rolling_interval_ms=10**9) as log:
        for i, payload in enumerate(payloads):
            log.write(payload, i)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=payload_lists)
def test_every_cut_of_the_last_record_is_a_torn_tail(
    kind: str, tmp_path: Path, payloads: list[bytes]
) -> None:
    frame_bytes = 20 + len(payloads[-1])
    for cut in range(1, frame_bytes):
        target = fresh(kind, tmp_path)
        write(target, payloads)
        path = data_files(target)[-1]
        rewrite(target, path, read_bytes(target, path)[:-cut])
        with open_log(target, fsync="never") as log:
            assert list(log.read_all()) == payloads[:-1], cut
            log.write(b"next", 99)
            assert list(log.read_all()) == [*payloads[:-1], b"next"], cut


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=payload_lists, data=st.data())
def test_a_random_bit_flip_is_reported_never_returned(
    kind: str, tmp_path: Path, payloads: list[bytes], data: st.DataObject
) -> None:
    target = fresh(kind, tmp_path)
    write(target, payloads)
    path = data_files(target)[-1]
    size = len(read_bytes(target, path))
    bit = data.draw(st.integers(0, size * 8 - 1))
    flip_bit(target, path, bit)
    if bit // 8 >= size - len(payloads[-1]):
        # A flip in the final record's payload looks exactly like a power cut mid-append (the header
        # landed, the payload did not): that record is dropped as a torn tail, never returned wrong.
        with open_log(target) as log:
            assert list(log.read_all()) == payloads[:-1]
            log.write(b"next", 99)
            assert log.statistics().dropped[0].bytes_dropped == 20 + len(payloads[-1])
            assert list(log.read_all()) == [*payloads[:-1], b"next"]
        return
    seen: list[bytes] = []
    with open_log(target) as log, pytest.raises(wal.CorruptRecordError) as info:
        seen.extend(log.read_all())
    assert seen == payloads[: len(seen)]  # what came before the damage is exactly what was written
    assert info.value.offset <= bit // 8
    with pytest.raises(wal.CorruptRecordError):
        open_log(target).write(b"refused: the damage is not a torn tail", 99)
    with open_log(target, repair=True) as log:
        assert log.statistics().dropped and list(log.read_all()) == seen
