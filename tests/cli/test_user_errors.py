"""Every `dstream` command refuses bad locations and values with one line and a non-zero exit.

A typo must never look like an empty, healthy log or checkpoint, and no user error ends in a
traceback; `dstream --debug` shows it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from dstream.cli.main import main, one_line

LOCATION_COMMANDS = [
    (["wal", "inspect"], "write-ahead log"),
    (["wal", "verify"], "write-ahead log"),
    (["wal", "repair"], "write-ahead log"),
    (["checkpoint", "inspect"], "checkpoint"),
    (["checkpoint", "verify"], "checkpoint"),
]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(("command", "what"), LOCATION_COMMANDS)
def test_a_missing_local_path_is_refused(tmp_path: Path, command: list[str], what: str) -> None:
    typo = str(tmp_path / "typo")
    result = invoke(*command, typo)
    assert (result.exit_code, result.output) == (
        1,
        f"Error: {typo}: no such directory; expected a {what} directory\n",
    )
    assert not (tmp_path / "typo").exists()  # repair did not create it


@pytest.mark.parametrize(("command", "what"), LOCATION_COMMANDS)
def test_a_regular_file_is_refused(tmp_path: Path, command: list[str], what: str) -> None:
    file = tmp_path / "file"
    file.write_text("not a directory")
    result = invoke(*command, str(file))
    assert (result.exit_code, result.output) == (
        1,
        f"Error: {file}: is a file, not a directory; expected a {what} directory\n",
    )


@pytest.mark.parametrize(("command", "what"), LOCATION_COMMANDS)
def test_an_empty_prefix_is_nothing_there(command: list[str], what: str) -> None:
    url = f"memory://dstream-cli-tests/{uuid.uuid4().hex}"
    result = invoke(*command, url)
    line = f"{url}: nothing there (no {what})\n"
    if command[1] == "inspect":
        assert (result.exit_code, result.output) == (0, line)
    else:
        assert (result.exit_code, result.output) == (1, f"Error: {line}")


def test_an_empty_local_directory_does_not_verify_as_an_empty_log(tmp_path: Path) -> None:
    result = invoke("wal", "verify", str(tmp_path))
    assert (result.exit_code, result.output) == (
        1,
        f"Error: {tmp_path}: nothing there (no write-ahead log)\n",
    )


def test_a_malformed_master_is_one_line(tmp_path: Path) -> None:
    result = invoke("demo", "--master", "local[x]", "--batches", "1")
    assert result.exit_code == 1
    assert result.output.startswith("Error: --master: malformed master URL 'local[x]'; expected one of:")
    assert result.output.count("\n") == 1


def test_a_file_as_the_demo_checkpoint_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "ckpt"
    file.write_text("")
    result = invoke("demo", "--checkpoint", str(file), "--batches", "1")
    assert (result.exit_code, result.output) == (
        1,
        f"Error: {file}: is a file, not a directory; expected a checkpoint directory\n",
    )


def test_an_error_inside_a_command_is_one_line_and_debug_shows_the_traceback() -> None:
    # An unsupported protocol fails deep inside the storage layer.
    quiet = subprocess.run(
        [sys.executable, "-m", "dstream.cli", "checkpoint", "verify", "ftp-unknown://x/y"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    assert (
        quiet.stderr.count("\n") == 1 and quiet.stderr.startswith("Error: ") and "ftp-unknown" in quiet.stderr
    )
    loud = subprocess.run(
        [sys.executable, "-m", "dstream.cli", "--debug", "checkpoint", "verify", "ftp-unknown://x/y"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert loud.returncode == 1 and "Traceback (most recent call last)" in loud.stderr


@pytest.mark.parametrize(("command", "what"), LOCATION_COMMANDS)
def test_an_empty_object_store_prefix_is_nothing_there(s3_moto, command: list[str], what: str) -> None:
    opts = [arg for k, v in s3_moto.storage_options.items() for arg in ("-o", f"{k}={json.dumps(v)}")]
    result = invoke(*command, s3_moto.url, *opts)
    line = f"{s3_moto.url}: nothing there (no {what})\n"
    expected = (0, line) if command[1] == "inspect" else (1, f"Error: {line}")
    assert (result.exit_code, result.output) == expected


def test_one_line_keeps_user_messages_and_flags_internal_errors() -> None:
    assert one_line(ValueError("bad value 'x';\n  expected y")) == "bad value 'x'; expected y"
    assert one_line(FileNotFoundError("no such file: /a")) == "no such file: /a"
    assert one_line(RuntimeError("boom")) == (
        "RuntimeError: boom (an internal error: run with --debug for the traceback)"
    )
