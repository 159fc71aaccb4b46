"""`dstream checkpoint inspect|verify` through click's CliRunner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from checkpoint import rdd_data
from checkpoint.layout import CheckpointName, metadata_checkpoint_url, rdd_checkpoint_dir
from checkpoint.metadata import DataCheckpointRef, MetadataCheckpoint, write_checkpoint
from dstream.cli.main import main
from tests.support.raw_fs import raw_fs
from tests.support.s3servers import StorageTarget

BOMB = b"cos\nsystem\n(S'echo pwned'\ntR."  # a pickle that runs code if loaded


def _setup(storage: StorageTarget, committed: bool = True) -> str:
    so = storage.storage_options
    ref_dir = rdd_checkpoint_dir(storage.url, "3", 1000)
    rdd_data.write_part(ref_dir, 0, b"state", storage_options=so)
    if committed:
        rdd_data.commit(ref_dir, 1, storage_options=so)
    ckpt = MetadataCheckpoint(
        2000,
        BOMB,
        pending_batches=(2000,),
        stream_ids=("0", "3"),
        data_checkpoints=(DataCheckpointRef("3", 1000, ref_dir),),
        master="local[2]",
        state_sizes={"3": 17},
    )
    write_checkpoint(storage.url, ckpt, CheckpointName(2000, 0), storage_options=so, key=None)
    return ref_dir


def _options(storage: StorageTarget) -> list[str]:
    args: list[str] = []
    for k, v in storage.storage_options.items():
        args += ["--storage-option", f"{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    return args


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSTREAM_CHECKPOINT_KEY", raising=False)


def test_inspect_shows_json_part_without_unpickling(storage: StorageTarget) -> None:
    _setup(storage)
    result = CliRunner().invoke(main, ["checkpoint", "inspect", storage.url, "--json", *_options(storage)])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    newest = body["newest_valid"]
    assert newest["batch_ms"] == 2000 and newest["streams"] == ["0", "3"]
    assert newest["state_sizes"] == {"3": 17} and newest["graph_bytes"] == len(BOMB)
    assert newest["signature"] == "unsigned" and body["uncommitted_data_checkpoints"] == []
    assert "pwned" not in result.output


def test_verify_ok_then_fails_on_corruption(storage: StorageTarget) -> None:
    _setup(storage)
    runner = CliRunner()
    ok = runner.invoke(main, ["checkpoint", "verify", storage.url, *_options(storage)])
    assert ok.exit_code == 0 and "newest checkpoint-2000-0" in ok.output
    fs, path = raw_fs(metadata_checkpoint_url(storage.url, CheckpointName(2000, 0)), storage.storage_options)
    raw = bytearray(fs.cat_file(path))
    raw[10] ^= 1
    fs.pipe_file(path, bytes(raw))
    bad = runner.invoke(main, ["checkpoint", "verify", storage.url, *_options(storage)])
    assert bad.exit_code == 1
    assert "CORRUPT" in bad.output and "no valid metadata checkpoint" in bad.output


def test_verify_fails_on_uncommitted_reference() -> None:
    target = StorageTarget("memory", "memory://dstream-tests/cli-uncommitted")
    ref = _setup(target, committed=False)
    result = CliRunner().invoke(main, ["checkpoint", "verify", target.url])
    assert result.exit_code == 1 and f"uncommitted data checkpoint referenced: {ref}" in result.output


def test_verify_fails_on_unsigned_when_key_set(monkeypatch: pytest.MonkeyPatch) -> None:
    target = StorageTarget("memory", "memory://dstream-tests/cli-signed")
    _setup(target)
    monkeypatch.setenv("DSTREAM_CHECKPOINT_KEY", "k")
    result = CliRunner().invoke(main, ["checkpoint", "verify", target.url])
    assert result.exit_code == 1 and "BAD SIGNATURE" in result.output
    shown = CliRunner().invoke(main, ["checkpoint", "inspect", target.url])
    assert shown.exit_code == 0 and "no valid checkpoint" in shown.output


def test_empty_directory_does_not_verify(tmp_path: object) -> None:
    result = CliRunner().invoke(main, ["checkpoint", "verify", str(tmp_path)])
    assert result.exit_code == 1 and result.output == f"Error: {tmp_path}: nothing there (no checkpoint)\n"


def test_bad_storage_option_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["checkpoint", "inspect", "memory://x", "--storage-option", "novalue"])
    assert result.exit_code == 2 and "KEY=VALUE" in result.output
