"""Metadata checkpoints: write, read newest valid, fall back past corrupt ones, signatures."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkpoint.envelope import SigningKey
from checkpoint.errors import (
    AlreadyPublishedError,
    CheckpointSignatureError,
    CorruptCheckpointError,
    NoValidCheckpointError,
)
from checkpoint.fingerprint import fingerprint_description
from checkpoint.layout import CheckpointName, metadata_checkpoint_url
from checkpoint.metadata import (
    DataCheckpointRef,
    MetadataCheckpoint,
    list_checkpoints,
    next_name,
    read_checkpoint,
    read_latest,
    write_checkpoint,
)
from tests.support.raw_fs import raw_fs
from tests.support.s3servers import StorageTarget

KEY = SigningKey("k1", b"secret-1")


def make(batch_ms: int, blob: bytes = b"graph") -> MetadataCheckpoint:
    return MetadataCheckpoint(
        batch_ms=batch_ms,
        graph_blob=blob,
        pending_batches=(batch_ms,),
        stream_ids=("0", "1"),
        data_checkpoints=(DataCheckpointRef("1", batch_ms - 1000, f"mem://x/rdd/1/{batch_ms - 1000}"),),
        master="local[2]",
        app_name="app",
        config={"batch_ms": 1000},
        fingerprint=fingerprint_description({"ops": ["map"]}),
        state_sizes={"1": 42},
        wal_needed_from_ms=batch_ms - 5000,
        extra={"offsets": {"0": 7}},
    )


def corrupt(url: str, storage_options: dict[str, object]) -> None:
    fs, path = raw_fs(url, storage_options)
    raw = bytearray(fs.cat_file(path))
    raw[len(raw) // 2] ^= 0x5A
    fs.pipe_file(path, bytes(raw))


def test_round_trip_keeps_every_field(storage: StorageTarget) -> None:
    so = storage.storage_options
    ckpt = make(5000)
    name = CheckpointName(5000, 0)
    write_checkpoint(storage.url, ckpt, name, storage_options=so, key=None)
    got = read_checkpoint(storage.url, name, storage_options=so, key=None)
    assert got == MetadataCheckpoint(**{**ckpt.__dict__, "name": name, "signature": "unsigned"})


def test_names_are_create_once(storage: StorageTarget) -> None:
    name = CheckpointName(1000, 0)
    write_checkpoint(storage.url, make(1000), name, storage_options=storage.storage_options, key=None)
    with pytest.raises(AlreadyPublishedError):
        write_checkpoint(
            storage.url, make(1000, b"other"), name, storage_options=storage.storage_options, key=None
        )


def test_read_latest_picks_newest_and_skips_corrupt(storage: StorageTarget) -> None:
    so = storage.storage_options
    names = [
        CheckpointName(1000, 0),
        CheckpointName(2000, 1),
        CheckpointName(2000, 2),
        CheckpointName(3000, 3),
    ]
    for n in names:
        write_checkpoint(storage.url, make(n.name_ms, f"g{n.seq}".encode()), n, storage_options=so, key=None)
    assert list_checkpoints(storage.url, storage_options=so) == names
    latest, skipped = read_latest(storage.url, storage_options=so, key=None)
    assert latest is not None and latest.name == names[-1] and skipped == []
    corrupt(metadata_checkpoint_url(storage.url, names[-1]), so)
    latest, skipped = read_latest(storage.url, storage_options=so, key=None)
    assert latest is not None and latest.name == CheckpointName(2000, 2) and latest.graph_blob == b"g2"
    assert [s.name for s in skipped] == [names[-1]] and "CRC32C" in skipped[0].reason


def test_empty_or_missing_dir_gives_none(storage: StorageTarget) -> None:
    url = storage.child("nothing").url
    assert read_latest(url, storage_options=storage.storage_options) == (None, [])
    assert read_latest(url, storage_options=storage.storage_options, require_valid=True) == (None, [])


def test_all_corrupt_raises_when_required(storage: StorageTarget) -> None:
    so = storage.storage_options
    write_checkpoint(storage.url, make(1000), CheckpointName(1000, 0), storage_options=so, key=None)
    corrupt(metadata_checkpoint_url(storage.url, CheckpointName(1000, 0)), so)
    latest, skipped = read_latest(storage.url, storage_options=so, key=None)
    assert latest is None and len(skipped) == 1
    with pytest.raises(NoValidCheckpointError, match=r"1 refused: .*CRC32C"):
        read_latest(storage.url, storage_options=so, key=None, require_valid=True)


def test_copy_under_a_newer_name_is_refused(storage: StorageTarget) -> None:
    so = storage.storage_options
    old = CheckpointName(1000, 0)
    write_checkpoint(storage.url, make(1000), old, storage_options=so, key=None)
    fs, src = raw_fs(metadata_checkpoint_url(storage.url, old), so)
    fs.pipe_file(
        raw_fs(metadata_checkpoint_url(storage.url, CheckpointName(9000, 5)), so)[1], fs.cat_file(src)
    )
    latest, skipped = read_latest(storage.url, storage_options=so, key=None)
    assert latest is not None and latest.name == old
    assert "file name says" in skipped[0].reason


def test_signature_required_refuses_unsigned_and_tampered(storage: StorageTarget) -> None:
    so = storage.storage_options
    write_checkpoint(storage.url, make(1000), CheckpointName(1000, 0), storage_options=so, key=KEY)
    write_checkpoint(storage.url, make(2000), CheckpointName(2000, 1), storage_options=so, key=None)
    latest, skipped = read_latest(storage.url, storage_options=so, key=KEY)
    assert latest is not None and latest.name == CheckpointName(1000, 0) and latest.signature == "verified"
    assert "unsigned" in skipped[0].reason
    with pytest.raises(CheckpointSignatureError):
        read_checkpoint(storage.url, CheckpointName(2000, 1), storage_options=so, key=KEY)


def test_key_from_environment_is_the_default(storage: StorageTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSTREAM_CHECKPOINT_KEY", "env-secret")
    write_checkpoint(
        storage.url, make(1000), CheckpointName(1000, 0), storage_options=storage.storage_options
    )
    got = read_checkpoint(storage.url, CheckpointName(1000, 0), storage_options=storage.storage_options)
    assert got.signature == "verified"
    monkeypatch.setenv("DSTREAM_CHECKPOINT_KEY", "another-secret")
    with pytest.raises(CheckpointSignatureError, match="key id"):
        read_checkpoint(storage.url, CheckpointName(1000, 0), storage_options=storage.storage_options)


def test_next_name_never_ranks_an_older_batch_above_a_newer_one() -> None:
    first = next_name(None, 3000)
    assert first == CheckpointName(3000, 0)
    late_completion_of_older_batch = next_name(first, 2000)
    assert late_completion_of_older_batch == CheckpointName(3000, 1)
    assert late_completion_of_older_batch > first
    assert next_name(late_completion_of_older_batch, 4000) == CheckpointName(4000, 2)


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.integers(0, 20), min_size=1, max_size=8),
    corrupt_mask=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_newest_valid_selection_with_random_corruptions(batches: list[int], corrupt_mask: list[bool]) -> None:
    url = f"memory://dstream-tests/hyp-{uuid.uuid4().hex}"
    latest: CheckpointName | None = None
    written: list[CheckpointName] = []
    for batch in batches:
        latest = next_name(latest, batch * 1000)
        write_checkpoint(url, make(batch * 1000, str(latest.seq).encode()), latest, key=None)
        written.append(latest)
    bad = {n for n, c in zip(written, corrupt_mask, strict=False) if c}
    for n in bad:
        corrupt(metadata_checkpoint_url(url, n), {})
    got, skipped = read_latest(url, key=None)
    valid = [n for n in written if n not in bad]
    expected = max(valid) if valid else None
    assert (got.name if got else None) == expected
    assert [s.name for s in skipped] == sorted(
        (n for n in bad if expected is None or n > expected), reverse=True
    )
    if got is not None:
        assert got.graph_blob == str(expected.seq).encode()  # type: ignore[union-attr]


def test_corrupt_checkpoint_error_names_the_file(storage: StorageTarget) -> None:
    with pytest.raises(CorruptCheckpointError, match="checkpoint-7-0: missing"):
        read_checkpoint(storage.url, CheckpointName(7, 0), storage_options=storage.storage_options, key=None)
