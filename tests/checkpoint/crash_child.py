"""A child process for the SIGKILL tests: publishes checkpoints in a loop and acknowledges each.

Usage: python -m tests.checkpoint.crash_child MODE URL STORAGE_OPTIONS_JSON
MODE is metadata, rdd or sink. Each line printed ("ack <n>") is printed only after the item is durable.
The parent kills this process at random moments or through DSTREAM_CRASH_POINT.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading

from checkpoint import rdd_data
from checkpoint.commit_log import CommitLog
from checkpoint.layout import rdd_checkpoint_dir
from checkpoint.metadata import MetadataCheckpoint
from checkpoint.metadata_writer import MetadataCheckpointWriter, WrittenInfo
from checkpoint.sink_staging import TransactionalFileOutput

BATCHES_MAX = 400
PARTS_N = 3


def payload(*key: int, size: int = 48_000) -> bytes:
    """Deterministic bytes for a key, big enough that a torn write would be visible."""
    seed = hashlib.sha256(repr(key).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def ack(n: int) -> None:
    print(f"ack {n}", flush=True)


def run_metadata(url: str, so: dict[str, object]) -> None:
    done = threading.Event()

    def written(batch_ms: int, info: WrittenInfo) -> None:
        ack(info.name.seq)

    def failed(batch_ms: int, exc: BaseException) -> None:
        print(f"failed {batch_ms}: {exc}", flush=True)
        done.set()

    writer = MetadataCheckpointWriter(
        url, storage_options=so, key=None, keep_n=3, on_written=written, on_failed=failed
    ).start()
    start = writer.latest_name.name_ms + 1 if writer.latest_name else 1
    for batch in range(start, start + BATCHES_MAX):
        if done.is_set():
            break
        writer.write(MetadataCheckpoint(batch, payload(batch), pending_batches=(batch,)))
    writer.stop(60)


def run_rdd(url: str, so: dict[str, object]) -> None:
    for batch in range(1, BATCHES_MAX):
        d = rdd_checkpoint_dir(url, "s", batch)
        if rdd_data.is_committed(d, storage_options=so):
            continue
        for i in range(PARTS_N):
            rdd_data.write_part(d, i, payload(batch, i), storage_options=so)
        rdd_data.commit(d, PARTS_N, storage_options=so)
        ack(batch)


def run_sink(url: str, so: dict[str, object]) -> None:
    out = TransactionalFileOutput(f"{url}/out", "sink", CommitLog(f"{url}/ckpt", so), storage_options=so)
    out.recover()
    for batch in range(1, BATCHES_MAX):
        staged = out.begin(batch)
        for i in range(2):
            out.stage(staged, f"part-{i}", payload(batch, i, size=8_000))
        out.commit(staged)  # "already-committed" for batches a previous run committed
        ack(batch)


if __name__ == "__main__":
    mode, target, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    {"metadata": run_metadata, "rdd": run_rdd, "sink": run_sink}[mode](target, options)
    print("done", flush=True)
