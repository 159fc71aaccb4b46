"""SIGKILL at the WAL's named crash points: the reopened log holds what the writer was told is durable.

A SIGKILL loses the process, not the kernel's page cache: bytes handed to write() before the kill are
on disk afterwards, fsynced or not (only a power cut loses them, which no process-level test can
cause). So a kill between an append and its fsync leaves the record in flight readable, complete, after
the acknowledged ones; a kill after a segment is created leaves a segment holding only its header.
Either way the log reopens, nothing acknowledged is lost, nothing is misparsed, and it accepts writes.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import wal
from tests.support.children import run_acking_child
from tests.wal.crashpoint_child import FIRST_SEGMENT_RECORDS, record
from wal import crashpoints
from wal.format import FILE_HEADER_BYTES
from wal.segments import sorted_segments

pytestmark = pytest.mark.chaos
TIMEOUT_S = 60.0


def crash_at(spec: str, url: str) -> list[int]:
    rc, acks = run_acking_child(
        "tests.wal.crashpoint_child",
        [url],
        crash=spec,
        kill_after_acks=None,
        delay_s=0.0,
        timeout_s=TIMEOUT_S,
    )
    assert rc == -signal.SIGKILL, f"the child was not killed at {spec}"
    return acks


def reopen_and_write(url: str) -> list[bytes]:
    """The records after reopening; also checks the reopened log takes a write after them."""
    with wal.open_wal(url) as log:
        records = list(log.read_all())
        log.write(b"after the crash", 10**9)
        assert list(log.read_all()) == [*records, b"after the crash"]
    return records


@pytest.mark.parametrize(("nth", "acked_n"), [(1, 0), (2, FIRST_SEGMENT_RECORDS)])
def test_kill_after_segment_create_keeps_exactly_the_acknowledged_records(
    tmp_path: Path, nth: int, acked_n: int
) -> None:
    url = str(tmp_path / "wal")
    acks = crash_at(f"{crashpoints.WAL_AFTER_SEGMENT_CREATE}@{nth}", url)
    assert acks == list(range(acked_n))
    segments = sorted_segments(p.name for p in (tmp_path / "wal").iterdir())
    assert len(segments) == nth
    assert (
        tmp_path / "wal" / str(segments[-1])
    ).stat().st_size == FILE_HEADER_BYTES  # the new segment: header only
    assert reopen_and_write(url) == [record(n) for n in acks]


@pytest.mark.parametrize("nth", [1, 7, FIRST_SEGMENT_RECORDS + 3])
def test_kill_between_append_and_fsync_keeps_the_acknowledged_records_then_the_one_in_flight(
    tmp_path: Path, nth: int
) -> None:
    url = str(tmp_path / "wal")
    acks = crash_at(f"{crashpoints.WAL_AFTER_APPEND_BEFORE_FSYNC}@{nth}", url)  # one hit per record
    assert acks == list(range(nth - 1))
    in_flight = nth - 1
    assert reopen_and_write(url) == [record(n) for n in [*acks, in_flight]]
