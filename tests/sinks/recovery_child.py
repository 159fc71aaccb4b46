"""A checkpointed driver for the end-to-end test: textFileStream -> map -> TransactionalFileSink.

Usage: python -m tests.sinks.recovery_child MODE CKPT_DIR IN_DIR OUT_DIR
MODE "first": a fresh context on a ManualClock at T0, stepped one batch at a time, printing
"ack <batch_ms>" after each batch's output job (the parent SIGKILLs it). MODE "recover": getOrCreate
restores the context from CKPT_DIR with the clock at the last batch time, so the pending and missed
batches re-run, then it waits for the last batch and stops.

Input file i (written by the parent before the run) has modification time T0 + i*1000 - 500, so
batch T0 + i*1000 takes exactly file i.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from dstream.clock import ManualClock
from dstream.context import Context
from dstream.sinks import TransactionalFileSink
from dstream.streaming import StreamingContext

T0_MS = 1_700_000_000_000
BATCH_MS = 1000
BATCHES_N = 6
WAIT_S = 60.0


def input_lines(i: int) -> list[str]:
    """Batch i's input file (i from 1): words; every third file is empty."""
    return [f"w{i}-{j} {j}" for j in range(i % 3 * 4)]


def to_record(line: str) -> dict[str, Any]:
    word, n = line.split()
    return {"word": word, "n": int(n) * 10}


def expected_output() -> dict[int, list[dict[str, Any]]]:
    return {T0_MS + i * BATCH_MS: [to_record(x) for x in input_lines(i)] for i in range(1, BATCHES_N + 1)}


def main(mode: str, ckpt: str, in_dir: str, out_dir: str) -> None:
    start_ms = T0_MS if mode == "first" else T0_MS + BATCHES_N * BATCH_MS
    clock = ManualClock(start_ms)

    def setup() -> StreamingContext:
        ssc = StreamingContext(Context("local[2]"), BATCH_MS / 1000, clock=clock)
        sink = TransactionalFileSink(out_dir, output_id="words")
        ssc.textFileStream(in_dir).map(to_record).write_to(sink)
        return ssc

    ssc = StreamingContext.getOrCreate(ckpt, setup, clock=clock)
    ssc.start()
    if mode == "first":
        for i in range(1, BATCHES_N + 1):
            clock.set_time(T0_MS + i * BATCH_MS)
            if not ssc.wait_for_batch(T0_MS + i * BATCH_MS, WAIT_S):
                raise SystemExit(f"batch {i} not processed within {WAIT_S} s")
            ssc.awaitTerminationOrTimeout(0.001)  # re-raises a failed job instead of acknowledging it
            print(f"ack {T0_MS + i * BATCH_MS}", flush=True)
    else:
        last = T0_MS + BATCHES_N * BATCH_MS
        if not ssc.wait_for_batch(last, WAIT_S):
            raise SystemExit(f"recovered driver did not process batch {last} within {WAIT_S} s")
        ssc.awaitTerminationOrTimeout(0.001)
        print(json.dumps({"done": last}), flush=True)
    ssc.stop(stopSparkContext=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
