"""A failed local append is cut back and the log moves to a new segment (never appends after it);
a full disk never leaves a file that makes a later open fail (issue 12)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import wal
from wal.backends import make_backend
from wal.inspection import inspect_backend
from wal.storage import DelegatingStorage, LocalStorage, register_storage, unregister_storage
from wal.storage.base import AppendFile, Buffer


def half_then_fail(fd: int, buffers: Sequence[bytes]) -> int:
    data = b"".join(buffers)
    os.write(fd, data[: len(data) // 2])
    raise OSError(errno.ENOSPC, "No space left on device (simulated)")


def test_a_partial_append_is_rolled_back_and_the_next_write_starts_a_new_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = wal.open_wal(str(tmp_path / "log"))
    first = log.write(b"good", 1)
    with monkeypatch.context() as patch:
        patch.setattr(os, "writev", half_then_fail)
        with pytest.raises(wal.WALError, match="No space"):
            log.write(b"lost" * 100, 2)
    assert os.path.getsize(tmp_path / "log" / first.path) == first.offset + 20 + 4  # cut back
    second = log.write(b"after", 3)
    assert second.path != first.path
    log.close()
    with wal.open_wal(str(tmp_path / "log")) as reader:
        assert list(reader.read_all()) == [b"good", b"after"]


def test_when_the_rollback_fails_too_the_next_write_cuts_the_failed_append_back_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = wal.open_wal(str(tmp_path / "log"))
    first = log.write(b"good", 1)
    with monkeypatch.context() as patch:
        patch.setattr(os, "writev", half_then_fail)
        patch.setattr(os, "ftruncate", lambda fd, size: half_then_fail(fd, [b""]))
        with pytest.raises(wal.WALError):
            log.write(b"lost" * 100, 2)
        # While the failed append cannot be cut back, every write fails and appends nothing after it.
        with pytest.raises(wal.WALError, match=r"cannot cut .* back after a failed append"):
            log.write(b"refused", 3)
    size = os.path.getsize(tmp_path / "log" / first.path)
    assert size > first.offset + 20 + 4  # the half frame is still there
    after = log.write(b"after", 4)  # cuts the failed append back, then starts a new segment
    assert os.path.getsize(tmp_path / "log" / first.path) == first.offset + 20 + 4
    assert after.path != first.path
    log.close()
    with wal.open_wal(str(tmp_path / "log")) as reopened:
        assert list(reopened.read_all()) == [b"good", b"after"]


class DiskFull(DelegatingStorage):
    """Local disk that, while `full`, refuses every append with ENOSPC (and, if asked, every delete)."""

    def __init__(self) -> None:
        super().__init__(LocalStorage())
        self.full = False
        self.deletes_fail = False

    def append(self, file: AppendFile, buffers: Sequence[Buffer]) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        super().append(file, buffers)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        if self.deletes_fail:
            raise OSError(errno.EIO, "delete refused (simulated)")
        super().delete(path, recursive=recursive)


@pytest.fixture
def disk_full() -> Iterator[DiskFull]:
    storage = DiskFull()
    register_storage("diskfull", lambda protocol, options: storage)
    try:
        yield storage
    finally:
        unregister_storage("diskfull")


@pytest.mark.parametrize("deletes_fail", [False, True], ids=["deleted", "left-behind"])
def test_after_enospc_a_restart_reads_exactly_the_acknowledged_records_without_repair(
    tmp_path: Path, disk_full: DiskFull, deletes_fail: bool
) -> None:
    url = f"diskfull://{tmp_path}/log"
    log = wal.open_wal(url, rolling_interval_ms=1000)
    acked = [log.write(b"acked-1", 1), log.write(b"acked-2", 2)]
    disk_full.full, disk_full.deletes_fail = True, deletes_fail
    for t in range(3, 7):  # the first fails in the open segment, the others each creating a segment
        with pytest.raises(wal.WALError, match="No space"):
            log.write(b"refused", t)
    del log  # the driver dies before any cleanup: no close()
    disk_full.full = disk_full.deletes_fail = False
    sizes = sorted(p.stat().st_size for p in (tmp_path / "log").iterdir())
    assert sizes == ([0, 0, 0] if deletes_fail else []) + [acked[1].offset + 20 + len(b"acked-2")]

    with wal.open_wal(url, rolling_interval_ms=1000) as reopened:
        assert list(reopened.read_all()) == [b"acked-1", b"acked-2"]
        assert [reopened.read(h) for h in acked] == [b"acked-1", b"acked-2"]
        reopened.write(b"after", 7)
        assert list(reopened.read_all()) == [b"acked-1", b"acked-2", b"after"]
    report = inspect_backend(make_backend(url, None, True))
    assert report.corrupt == []


def test_a_whole_record_whose_append_was_reported_failed_is_cut_back_before_the_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bytes all landed but the commit failed (fsync), and cutting them back failed too: the record
    # is whole, yet its writer was told it failed, so it must not be read back after the next write.
    log = wal.open_wal(str(tmp_path / "log"))
    log.write(b"good", 1)

    def fsync_fails(fd: int) -> None:
        raise OSError(errno.EIO, "fsync failed (simulated)")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fdatasync", fsync_fails)
        patch.setattr(os, "ftruncate", lambda fd, size: half_then_fail(fd, [b""]))
        with pytest.raises(wal.WALError, match="fsync failed"):
            log.write(b"reported-failed", 2)
    log.write(b"after", 3)
    assert list(log.read_all()) == [b"good", b"after"]
    log.close()
    with wal.open_wal(str(tmp_path / "log")) as reopened:
        assert list(reopened.read_all()) == [b"good", b"after"]
