"""Checkpoint directory layout: path functions, name parsing, id validation."""

from __future__ import annotations

import pytest

from checkpoint import layout
from checkpoint.errors import CheckpointValueError
from checkpoint.layout import CheckpointName


def test_paths() -> None:
    d = "s3://bucket/app/"
    assert (
        layout.metadata_checkpoint_url(d, CheckpointName(5000, 3))
        == "s3://bucket/app/metadata/checkpoint-5000-3"
    )
    assert layout.received_block_metadata_dir(d) == "s3://bucket/app/receivedBlockMetadata"
    assert layout.received_data_dir(d, 2) == "s3://bucket/app/receivedData/2"
    assert layout.rdd_checkpoint_dir(d, "7", 1000) == "s3://bucket/app/rdd/7/1000"
    assert layout.commits_dir(d, "sink-1") == "s3://bucket/app/commits/sink-1"
    assert layout.commit_record_name(1000) == "00000000000000001000"
    assert layout.driver_epoch_url(d, 4) == "s3://bucket/app/metadata/driver-epoch-4"
    assert layout.driver_lock_url("/tmp/x") == "/tmp/x/metadata/driver.lock"


def test_checkpoint_names_parse_and_order() -> None:
    assert CheckpointName.parse("checkpoint-5000-3") == CheckpointName(5000, 3)
    for bad in ("checkpoint-5000", ".checkpoint-5000-3.tmp-abc", "checkpoint-5000-3.bk", "checkpoint-x-1"):
        assert CheckpointName.parse(bad) is None
    assert CheckpointName(2000, 1) < CheckpointName(2000, 2) < CheckpointName(3000, 0)
    assert layout.parse_epoch("driver-epoch-12") == 12 and layout.parse_epoch("driver-heartbeat-12") is None


@pytest.mark.parametrize("bad", ["..", "a/b", "", "x" * 201, "a b", None, True])
def test_ids_that_could_escape_are_refused(bad: object) -> None:
    with pytest.raises(CheckpointValueError, match="got"):
        layout.rdd_checkpoint_dir("/tmp/x", bad, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True])
def test_times_must_be_non_negative_int_ms(bad: object) -> None:
    with pytest.raises(CheckpointValueError, match="milliseconds"):
        layout.rdd_checkpoint_dir("/tmp/x", "1", bad)  # type: ignore[arg-type]
