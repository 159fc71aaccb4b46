"""A driver that lost its lease commits nothing: `write_batch` checks the fence right before the commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkpoint.errors import DriverLeaseError
from dstream.sinks import TransactionalFileSink, write_batch


def fenced() -> None:
    raise DriverLeaseError("driver 'zombie' (epoch 0) was fenced: another driver took over")


def test_a_fenced_driver_stages_but_does_not_commit(sc, tmp_path: Path) -> None:
    sink = TransactionalFileSink(str(tmp_path / "out"))
    with pytest.raises(DriverLeaseError, match="fenced"):
        write_batch(sink, 1000, sc.parallelize([1, 2, 3], 2), fence=fenced)
    assert sink.read_committed() == {} and not sink.is_committed(1000)
    # the successor's run of the batch commits it once (the zombie's staging is its own attempt)
    successor = TransactionalFileSink(str(tmp_path / "out"))
    assert write_batch(successor, 1000, sc.parallelize([1, 2, 3], 2), fence=lambda: None) == "committed"
    assert successor.read_committed() == {1000: [1, 2, 3]}
