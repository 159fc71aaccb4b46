"""A child process for the sink SIGKILL tests: a queueStream pipeline writing to one sink.

Usage: python -m tests.sinks.pipeline_child KIND URL STORAGE_OPTIONS_JSON
KIND is file-jsonl, file-parquet, sqlite, text or canary. The pipeline runs BATCHES_N one-second
batches on a ManualClock starting at 0, over the same deterministic input every time, and prints
"ack <batch_ms>" only after the batch's output job has finished. The parent kills it at a crash point
(DSTREAM_CRASH_POINT) or at a random moment, then runs it again from the beginning: batch times and
data are identical, so the sinks must skip what was committed and commit the rest.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from dstream.clock import ManualClock
from dstream.context import Context
from dstream.sinks import AtLeastOnceFileSink, SQLiteKeyValueSink, TransactionalFileSink
from dstream.streaming import StreamingContext

BATCHES_N = 8
BATCH_MS = 1000
WAIT_S = 30.0
TABLE = "kv"


def batch_records(i: int) -> list[dict[str, Any]]:
    """Batch i's input (i from 1): every fourth batch is empty."""
    return [{"id": f"{i}-{j}", "batch": i, "j": j} for j in range(i % 4 * 3)]


def expected_batches() -> dict[int, list[dict[str, Any]]]:
    return {i * BATCH_MS: batch_records(i) for i in range(1, BATCHES_N + 1)}


def to_pair(record: dict[str, Any]) -> tuple[str, int]:
    return f"k{record['j']}", record["batch"] * 100 + record["j"]


def make_sink(kind: str, url: str, so: dict[str, Any]) -> Any:
    if kind.startswith("file-"):
        return TransactionalFileSink(url, format=kind[5:], storage_options=so, output_id="out")
    if kind == "sqlite":
        return SQLiteKeyValueSink(url, TABLE, output_id="out")
    if kind == "canary":
        return AtLeastOnceFileSink(url, storage_options=so, output_id="out")
    raise SystemExit(f"unknown kind {kind!r}")


def main(kind: str, url: str, so: dict[str, Any]) -> None:
    sc = Context("local[2]")
    clock = ManualClock(0)
    ssc = StreamingContext(sc, BATCH_MS / 1000, clock=clock)
    stream = ssc.queueStream([batch_records(i) for i in range(1, BATCHES_N + 1)])
    if kind == "text":
        stream.map(lambda r: json.dumps(r, sort_keys=True)).saveAsTextFiles(f"{url}/out", **so)
    elif kind == "sqlite":
        stream.map(to_pair).write_to(make_sink(kind, url, so))
    else:
        stream.write_to(make_sink(kind, url, so))
    ssc.start()
    for i in range(1, BATCHES_N + 1):
        clock.set_time(i * BATCH_MS)
        if not ssc.wait_for_batch(i * BATCH_MS, WAIT_S):
            raise SystemExit(f"batch {i * BATCH_MS} not processed within {WAIT_S} s")
        ssc.awaitTerminationOrTimeout(0.001)  # re-raises a failed job instead of acknowledging it
        print(f"ack {i * BATCH_MS}", flush=True)
    ssc.stop(stopSparkContext=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
