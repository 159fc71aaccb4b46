"""SIGKILL a writer process mid-write: every acknowledged record survives, intact and in order.

The child acks a record on a pipe only after write() returned; the parent kills it at a random ack
count (while it is busy with the next write), reopens the log, and checks the acked records are all
there, that every record read back is one the child wrote (nothing misparsed), per-writer order, and
that the reopened log accepts writes after truncating the torn tail. With megabyte records and a
small random delay after the last ack, the kill often lands inside one write() and leaves a really
torn record (payload cut short) rather than a synthetic cut.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wal
from tests.support.s3servers import StorageTarget
from tests.wal.crash_child import payload
from tests.wal.helpers import open_log

ROOT = Path(__file__).resolve().parents[2]
ACK_TIMEOUT_S = 30.0


def run_and_kill(
    target: StorageTarget, threads: int, kill_after_acks: int, big: bool = False, kill_delay_s: float = 0.0
) -> set[tuple[int, int]]:
    """Start the child, collect acks until `kill_after_acks` (and for `kill_delay_s` more), SIGKILL it.

    Returns the acked records. The delay moves the kill from just after an ack (the child is still
    building the next record) into the next write itself.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.wal.crash_child", target.url, json.dumps(target.storage_options),
         str(threads), "1" if big else "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    acked: set[tuple[int, int]] = set()
    buffer = b""
    deadline = time.monotonic() + ACK_TIMEOUT_S
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        try:
            kill_at: float | None = None
            while kill_at is None or time.monotonic() < kill_at:
                assert time.monotonic() < deadline, f"child too slow: {len(acked)} acks"
                if kill_at is None and len(acked) >= kill_after_acks:
                    kill_at = time.monotonic() + kill_delay_s
                    continue
                until = deadline if kill_at is None else kill_at
                if not selector.select(timeout=max(0.0, until - time.monotonic())):
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, f"child exited early: {proc.wait(timeout=10)} {proc.stderr.read()!r}"  # type: ignore[union-attr]
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                acked.update((int(t), int(s)) for t, s in (line.split() for line in lines))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    # Acks still in the pipe were sent before the kill: the records were durable, so count them.
    rest = buffer + proc.stdout.read()
    acked.update((int(t), int(s)) for t, s in (line.split() for line in rest.split(b"\n") if line))
    proc.stdout.close()
    proc.stderr.close()  # type: ignore[union-attr]
    return acked


def check_survivors(
    target: StorageTarget, threads: int, acked: set[tuple[int, int]], big: bool = False
) -> wal.WALStatistics:
    """Check the survivors; return the statistics of the reopened writer (what recovery dropped)."""
    with open_log(target) as log:
        records = list(log.read_all())
    found: list[tuple[int, int]] = []
    for record in records:
        thread, seq = (int(x) for x in record.split(b" ", 2)[:2])
        assert record == payload(thread, seq, big), "a record was misparsed"
        found.append((thread, seq))
    assert acked <= set(found), f"lost acknowledged records: {sorted(acked - set(found))[:5]}"
    for thread in range(threads):
        mine = [seq for t, seq in found if t == thread]
        assert mine == list(range(len(mine))), "records out of order or duplicated"
    with open_log(target) as log:  # the writer recovers the torn tail, then appends
        log.write(b"after the crash", 10**9)
        assert list(log.read_all()) == [*records, b"after the crash"]
        return log.statistics()


@pytest.mark.chaos
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_on_local_disk_loses_no_acknowledged_record(tmp_path: Path, seed: int) -> None:
    target = StorageTarget("local", str(tmp_path / "wal"))
    acked = run_and_kill(target, threads=1, kill_after_acks=random.Random(seed).randint(5, 400))
    check_survivors(target, 1, acked)


@pytest.mark.chaos
def test_sigkill_during_group_commit_loses_no_acknowledged_record(tmp_path: Path) -> None:
    target = StorageTarget("local", str(tmp_path / "wal"))
    acked = run_and_kill(target, threads=4, kill_after_acks=random.Random(7).randint(50, 600))
    check_survivors(target, 4, acked)


@pytest.mark.chaos
def test_sigkill_on_moto_s3_loses_no_acknowledged_record(s3_moto: StorageTarget) -> None:
    acked = run_and_kill(s3_moto, threads=1, kill_after_acks=random.Random(11).randint(5, 40))
    check_survivors(s3_moto, 1, acked)


@pytest.mark.chaos
@pytest.mark.parametrize("seed", [21, 22, 23, 24])
def test_sigkill_mid_large_write_keeps_acked_records_and_drops_the_torn_one(
    tmp_path: Path, seed: int
) -> None:
    """Megabyte records, so the kill often lands inside one write(); it may also land between writes.

    Either way: the acked records survive, at most the one record in flight is also there (written
    whole before the kill), and anything recovery drops lies past the last acked record.
    """
    target = StorageTarget("local", str(tmp_path / "wal"))
    rng = random.Random(seed)
    kill_delay_s = rng.uniform(0.0, 0.02)  # a 2 MB write plus its fdatasync takes milliseconds
    acked = run_and_kill(
        target, threads=1, kill_after_acks=rng.randint(2, 6), big=True, kill_delay_s=kill_delay_s
    )
    stats = check_survivors(target, 1, acked, big=True)
    with open_log(target) as log:
        survivors = len(list(log.read_all())) - 1  # minus the record written after the crash
    assert survivors in (len(acked), len(acked) + 1), "only the record in flight may be unacked"
    assert len(stats.dropped) <= 1
    for drop in stats.dropped:  # a torn record: never more than the one frame (plus a new file header)
        assert drop.reason.startswith("torn tail"), drop
        assert drop.bytes_dropped < 16 + 20 + len(payload(0, len(acked), big=True)), drop
        assert survivors == len(acked), "a torn record was found and also returned"
