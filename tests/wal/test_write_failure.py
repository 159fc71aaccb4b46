"""A failed local append is cut back and the log moves to a new segment (never appends after it)."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

import wal


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


def test_when_the_rollback_fails_too_the_log_stops_until_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = wal.open_wal(str(tmp_path / "log"))
    log.write(b"good", 1)
    with monkeypatch.context() as patch:
        patch.setattr(os, "writev", half_then_fail)
        patch.setattr(os, "ftruncate", lambda fd, size: half_then_fail(fd, [b""]))
        with pytest.raises(wal.WALError):
            log.write(b"lost" * 100, 2)
    with pytest.raises(wal.WALError, match="unusable until reopened"):
        log.write(b"refused", 3)
    log.close()
    with wal.open_wal(str(tmp_path / "log")) as reopened:
        assert list(reopened.read_all()) == [b"good"]  # the half frame is a torn tail
        reopened.write(b"after", 4)
        assert reopened.statistics().dropped[0].reason.startswith("torn tail")
        assert list(reopened.read_all()) == [b"good", b"after"]
