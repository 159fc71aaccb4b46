"""The metadata checkpoint's JSON part, version by version, against committed golden files.

Version 1 stored each data checkpoint reference as the URL the driver wrote; version 2 stores a
reference inside the checkpoint directory as a path relative to it. Both stay readable; a newer
version is refused by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from checkpoint.envelope import encode
from checkpoint.errors import CorruptCheckpointError
from checkpoint.layout import CheckpointName
from checkpoint.metadata import DataCheckpointRef, MetadataCheckpoint, decode_checkpoint, encode_checkpoint

GOLDEN = Path(__file__).parent / "golden"
NAME = CheckpointName(2000, 3)


def sample(dir_url: str) -> MetadataCheckpoint:
    return MetadataCheckpoint(
        batch_ms=2000,
        graph_blob=b"graph-bytes",
        pending_batches=(2000,),
        stream_ids=("0", "1"),
        data_checkpoints=(DataCheckpointRef("1", 2000, f"{dir_url}/rdd/1/2000"),),
        master="local[2]",
        app_name="golden",
        config={"spark.master": "local[2]"},
        wal_needed_from_ms=1000,
        extra={"completed": True},
    )


def v1_json_part() -> dict[str, object]:
    """What a version-1 writer put in the JSON part (no json_version, the reference as a URL)."""
    part = sample("ck").json_part(NAME)
    del part["json_version"]
    part["data_checkpoints"] = [{"stream_id": "1", "batch_ms": 2000, "url": "ck/rdd/1/2000"}]
    return part


def test_version_2_is_what_the_writer_produces_byte_for_byte() -> None:
    golden = (GOLDEN / "metadata-json-v2.bin").read_bytes()
    assert encode_checkpoint(sample("/data/ckpt"), NAME, None, "/data/ckpt") == golden


def test_version_2_references_resolve_against_the_directory_they_are_read_from() -> None:
    golden = (GOLDEN / "metadata-json-v2.bin").read_bytes()
    ckpt = decode_checkpoint(golden, NAME, None, "golden", "s3://bucket/moved")
    assert ckpt.data_checkpoints == (DataCheckpointRef("1", 2000, "s3://bucket/moved/rdd/1/2000"),)


def test_version_1_is_still_read_with_its_references_as_written() -> None:
    golden = (GOLDEN / "metadata-json-v1.bin").read_bytes()
    assert golden == encode(v1_json_part(), b"graph-bytes", None)
    ckpt = decode_checkpoint(golden, NAME, None, "golden", "/anywhere")
    assert ckpt.data_checkpoints == (DataCheckpointRef("1", 2000, "ck/rdd/1/2000"),)
    assert ckpt.batch_ms == 2000 and ckpt.pending_batches == (2000,)


def test_a_newer_json_version_is_refused_by_name() -> None:
    part = sample("/d").json_part(NAME, "/d")
    part["json_version"] = 3
    with pytest.raises(CorruptCheckpointError, match="JSON part version 3"):
        decode_checkpoint(encode(part, b"graph-bytes", None), NAME, None, "future", "/d")


def test_a_reference_outside_the_directory_keeps_its_url() -> None:
    ckpt = sample("/data/ckpt")
    part = ckpt.json_part(NAME, "/elsewhere")
    assert part["data_checkpoints"] == [{"stream_id": "1", "batch_ms": 2000, "url": "/data/ckpt/rdd/1/2000"}]
