"""`dstream checkpoint quarantine list|show|drop|replay` through click's CliRunner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from checkpoint.quarantine import Quarantine, QuarantinedBatch
from dstream.cli.main import main
from dstream.clock import ManualClock
from dstream.context import Conf, Context
from dstream.streaming import StreamingContext
from tests.receiver.helpers import wait_for

ERROR = 'Traceback (most recent call last):\n  File "job.py", line 3\nValueError: poison 666\n'
WAIT_S = 30.0


@pytest.fixture
def ckpt(tmp_path: Path) -> str:
    url = str(tmp_path / "ckpt")
    store = Quarantine(url)
    store.put(QuarantinedBatch(3000, ERROR, 3, {"0": ["666", "667"], "2": [("k", 1)]}))
    store.put(QuarantinedBatch(9000, "RuntimeError: boom", 1, {"0": ["x"]}))
    return url


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, ["checkpoint", "quarantine", *args])


def test_list_shows_times_counts_and_the_error(ckpt: str) -> None:
    result = cli("list", ckpt)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "3000  attempts=3  records [stream 0: 2 stream 2: 1]  ValueError: poison 666",
        "9000  attempts=1  records [stream 0: 1]  RuntimeError: boom",
    ]
    as_json = json.loads(cli("list", ckpt, "--json").output)
    assert as_json[0] == {
        "batch_ms": 3000,
        "attempts": 3,
        "records": {"0": 2, "2": 1},
        "error": "ValueError: poison 666",
    }


def test_show_prints_the_records_and_the_whole_batch_as_json(ckpt: str) -> None:
    result = cli("show", ckpt, "3000")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ['"666"', '"667"', '{"$tuple": ["k", 1]}']
    body = json.loads(cli("show", ckpt, "3000", "--json").output)
    assert body["error"] == ERROR and body["streams"] == {"0": ["666", "667"], "2": [{"$tuple": ["k", 1]}]}


def test_drop_deletes_one_batch_for_good(ckpt: str) -> None:
    result = cli("drop", ckpt, "3000")
    assert result.exit_code == 0 and "dropped quarantined batch 3000 ms (3 records)" in result.output
    assert Quarantine(ckpt).batch_times() == [9000]
    again = cli("drop", ckpt, "3000")
    assert again.exit_code == 1
    assert "no quarantined batch at 3000 ms; quarantined: [9000]" in again.output


@pytest.mark.parametrize("command", ["show", "drop"])
def test_unknown_batch_and_missing_directory_are_one_line_errors(
    ckpt: str, tmp_path: Path, command: str
) -> None:
    result = cli(command, ckpt, "4000")
    assert result.exit_code == 1 and "no quarantined batch at 4000 ms" in result.output
    missing = cli(command, str(tmp_path / "nope"), "3000")
    assert missing.exit_code == 1 and "no such directory" in missing.output
    assert "Traceback" not in result.output + missing.output


def test_list_of_an_empty_checkpoint_says_so(tmp_path: Path) -> None:
    (tmp_path / "ckpt" / "metadata").mkdir(parents=True)
    (tmp_path / "ckpt" / "metadata" / "checkpoint-1000-0").write_bytes(b"x")
    result = cli("list", str(tmp_path / "ckpt"))
    assert result.exit_code == 0 and result.output.strip().endswith("no quarantined batches")


@pytest.fixture
def push_context() -> Iterator[tuple[StreamingContext, Any, ManualClock, dict[int, list[Any]]]]:
    sc = Context.getOrCreate(Conf().setMaster("local[2]").setAppName("quarantine-replay"))
    clock = ManualClock(0)
    ssc = StreamingContext(sc, 1, clock=clock)
    stream = ssc.pushStream("127.0.0.1", 0)
    out: dict[int, list[Any]] = {}
    stream.foreachRDD(lambda t, rdd: out.__setitem__(round(t.timestamp() * 1000), rdd.collect()))
    ssc.start()
    try:
        yield ssc, stream, clock, out
    finally:
        ssc.stop(stopSparkContext=True)


def test_replay_pushes_the_records_to_a_running_push_receiver(ckpt: str, push_context: Any) -> None:
    ssc, stream, clock, out = push_context
    result = cli("replay", ckpt, "9000", "--push", f"127.0.0.1:{stream.port}", "--timeout-s", "20")
    assert result.exit_code == 0, result.output
    assert "replayed 1 records of batch 9000 ms" in result.output
    wait_for(ssc.runtime.block_allocator.has_unallocated_received_blocks)  # acknowledged: stored
    clock.set_time(1000)
    assert ssc.wait_for_batch(1000, WAIT_S)
    assert out[1000] == ["x"]
    assert Quarantine(ckpt).batch_times() == [3000, 9000]  # replay keeps it; drop is explicit


def test_replay_refuses_records_a_push_receiver_cannot_carry(ckpt: str) -> None:
    result = cli("replay", ckpt, "3000", "--push", "127.0.0.1:9")
    assert result.exit_code == 1 and "1 records that are not str or bytes" in result.output
    bad_address = cli("replay", ckpt, "3000", "--push", "nowhere")
    assert bad_address.exit_code == 2 and "expected HOST:PORT" in bad_address.output
