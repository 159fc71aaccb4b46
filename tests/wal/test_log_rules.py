"""Segment rules at the log level: a group is filed by its newest record, clean is strict, reopen rolls."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import wal
from wal.log import FileBasedWriteAheadLog
from wal.segments import parse_segment

GOLDEN_LOG = Path(__file__).parent / "golden" / "v1-log"


def memory_log(rolling_interval_ms: int) -> FileBasedWriteAheadLog:
    log = wal.open_wal(f"memory://wal-rules/{uuid.uuid4().hex}", rolling_interval_ms=rolling_interval_ms)
    assert isinstance(log, FileBasedWriteAheadLog)
    return log


def segment_of(handle: wal.RecordHandle) -> tuple[int, int]:
    name = parse_segment(handle.path.split("/")[0])
    assert name is not None
    return name.start_ms, name.end_ms


def test_a_group_is_filed_under_its_newest_record_so_clean_never_drops_newer_ones() -> None:
    log = memory_log(rolling_interval_ms=2)
    handles = log.write_batch([(b"1", 1), (b"3", 3), (b"5", 5), (b"7", 7)])
    assert {segment_of(h) for h in handles} == {(1, 7)}  # not (1, 3): that would let clean(4) drop 5 and 7
    log.write(b"100", 100)  # rolls, so the first segment is no longer open
    log.clean(7, wait=True)
    assert list(log.read_all()) == [b"1", b"3", b"5", b"7", b"100"]  # end 7 is not < 7
    log.clean(8, wait=True)
    assert list(log.read_all()) == [b"100"]


def test_a_record_at_exactly_the_end_stays_in_the_segment() -> None:
    log = memory_log(rolling_interval_ms=1000)
    first = log.write(b"a", 1000)
    same = log.write(b"b", 2000)
    later = log.write(b"c", 2001)
    assert segment_of(first) == segment_of(same) == (1000, 2000)
    assert segment_of(later) == (2001, 3001)


def test_a_reopened_log_never_appends_to_an_existing_segment(tmp_path: Path) -> None:
    url = str(tmp_path / "log")
    with wal.open_wal(url) as log:
        first = log.write(b"a", 1)
    with wal.open_wal(url) as log:
        second = log.write(b"b", 2)
    assert first.path != second.path


def test_the_checked_in_v1_log_directory_reads_back(tmp_path: Path) -> None:
    """A log written by format v1 (two segments, a group commit, a torn tail) stays readable."""
    copy = tmp_path / "log"
    shutil.copytree(GOLDEN_LOG, copy)
    with wal.open_wal(str(copy)) as log:
        assert list(log.read_all()) == [b"alpha", b"beta", b"", b"gamma" * 50, b"delta"]
        handle = wal.RecordHandle("log-0000000001-70000-130000", 16, 5)
        assert log.read(handle) == b"delta"


def test_a_file_url_and_a_plain_path_are_the_same_local_log(tmp_path: Path) -> None:
    with wal.open_wal(f"file://{tmp_path}/log") as log:
        handle = log.write(b"x", 1)
    assert (tmp_path / "log" / handle.path).is_file()
    with wal.open_wal(str(tmp_path / "log")) as log:
        assert list(log.read_all()) == [b"x"]
