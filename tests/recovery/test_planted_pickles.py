"""A crafted pickle planted in the checkpoint directory is refused, before it is unpickled, when a key is set.

Issue 12: with `DSTREAM_CHECKPOINT_KEY` set, the metadata checkpoints were signed but an RDD data
checkpoint part and a record of the block tracker's WAL were plain pickles, so replacing either ran
the attacker's code at the next getOrCreate. The planted pickle here would create a marker directory
when unpickled; each test asserts the restart refuses the file (naming it) and the marker never exists.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import crc32c
import pytest

from dstream.clock import ManualClock
from dstream.context import Conf, Context
from dstream.receiver.receiver_tracker import metadata_wal_url
from dstream.streaming import StreamingContext
from tests.receiver.helpers import wait_for
from tests.recovery.support import BATCH_MS, new_context, record, run_batches
from tests.recovery.test_cases import make_setup, run_first
from tests.recovery.test_harness import word_batches
from tests.recovery.test_receivers import PicklableCountingReceiver, add_values, keyed
from wal import open_wal


class Payload:
    """Unpickling this creates `marker`: the stand-in for an attacker's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.marker,))


def crafted_pickle(marker: Path) -> bytes:
    import pickle

    return pickle.dumps(Payload(marker), protocol=5)


def v1_part(payload: bytes) -> bytes:
    """An RDD checkpoint part as version 1 framed it (magic, version, reserved, length, CRC32C)."""
    return struct.pack("<4sHHQI", b"DSRD", 1, 0, len(payload), crc32c.crc32c(payload)) + payload


@pytest.fixture
def keyed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSTREAM_CHECKPOINT_KEY", "planted-pickle-test-secret")
    monkeypatch.delenv("DSTREAM_CHECKPOINT_KEY_ID", raising=False)


@pytest.mark.usefixtures("keyed_env")
def test_a_planted_data_checkpoint_part_is_refused_before_unpickling(tmp_path: Path) -> None:
    path, clock, marker = str(tmp_path / "ckpt"), ManualClock(0), tmp_path / "pwned"
    setup = make_setup(clock, path, add_values, word_batches(6))
    run_first(path, clock, setup, 4)
    committed = sorted((tmp_path / "ckpt" / "rdd").glob("*/*/_COMMITTED"))
    assert committed, "the first run wrote no RDD data checkpoint"
    for marker_file in committed:  # every committed part: whichever one recovery reads is planted
        for part in marker_file.parent.glob("part-*"):
            part.unlink()
            part.write_bytes(v1_part(crafted_pickle(marker)))

    ssc = StreamingContext.getOrCreate(path, setup, clock=clock)
    refs = ssc.recovered.data_checkpoints if ssc.recovered is not None else ()
    assert refs, "the recovered checkpoint references no data checkpoint"
    with pytest.raises(Exception, match=r"part-0000\d"):
        ssc.sparkContext._checkpoint_rdd(refs[0].url).collect()
    assert not marker.exists()


@pytest.mark.usefixtures("keyed_env")
def test_a_planted_tracker_wal_record_is_refused_before_unpickling(tmp_path: Path) -> None:
    Context(conf=Conf().setMaster("local[2]").set("spark.streaming.receiver.writeAheadLog.enable", "true"))
    path, clock, marker = str(tmp_path / "ckpt"), ManualClock(0), tmp_path / "pwned"
    receiver = PicklableCountingReceiver(6, chunk=3)

    def setup() -> StreamingContext:
        ssc = new_context(clock, path)
        stream = ssc.receiverStream(receiver).map(keyed)
        stream.updateStateByKey(add_values).checkpoint(1).foreachRDD(record)
        return ssc

    first = StreamingContext.getOrCreate(path, setup, clock=clock)
    first.start()
    wait_for(lambda: receiver.next == 6)
    run_batches(first, clock, BATCH_MS, 2 * BATCH_MS)
    first.stop(stopSparkContext=False)

    # The attacker can write the directory but holds no key: a tracker event whose pickle runs code.
    with open_wal(metadata_wal_url(path)) as attacker:
        attacker.write(b"RBT\x02" + crafted_pickle(marker), 3 * BATCH_MS)

    with pytest.raises(Exception, match=r"receivedBlockMetadata/log-\d{10}-\d+-\d+") as caught:
        second = StreamingContext.getOrCreate(path, setup, clock=clock)
        second.start()
    assert "authenticated" in str(caught.value) or "MAC" in str(caught.value)
    assert not marker.exists()
