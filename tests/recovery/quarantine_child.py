"""A driver with a poison batch, for the quarantine SIGKILL test.

`python -m tests.recovery.quarantine_child DIR START_MS LAST_MS`: getOrCreate a checkpointed context on
DIR whose output fails deterministically on batch POISON_BATCH_MS, with a ManualClock at START_MS; run
every batch up to LAST_MS one at a time, printing "ack <batch_ms>" after each; then print one JSON line
"result {...}" with what the test checks, and stop. With DSTREAM_CRASH_POINT=quarantine.after_write it
dies right after the poison batch's quarantine file is published.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from dstream.clock import ManualClock
from dstream.streaming import StreamingContext
from tests.recovery.support import BATCH_MS, WAIT_S, ReplayInputDStream, new_context

POISON_BATCH_MS = 3 * BATCH_MS
BATCHES = [[f"r{i}a", f"r{i}b"] for i in range(1, 11)]


def poison_output(t: Any, rdd: Any) -> None:
    ms = round(t.timestamp() * 1000)
    records = rdd.collect()
    if ms == POISON_BATCH_MS:
        raise ValueError(f"poison batch {ms}: {sorted(records)}")


def main(argv: list[str]) -> int:
    path, start_ms, last_ms = argv[0], int(argv[1]), int(argv[2])
    clock = ManualClock(start_ms)

    def setup() -> StreamingContext:
        ssc = new_context(clock, path)
        ReplayInputDStream(ssc, BATCHES).foreachRDD(poison_output)
        return ssc

    ssc = StreamingContext.getOrCreate(path, setup, clock=clock)
    ssc.start()
    first = (start_ms // BATCH_MS) * BATCH_MS or BATCH_MS
    for t in range(first, last_ms + 1, BATCH_MS):
        clock.set_time(t)
        assert ssc.wait_for_batch(t, WAIT_S), f"batch {t} ms not processed"
        assert ssc.wait_for_checkpoint(t, WAIT_S), f"no completion checkpoint of {t} ms"
        print(f"ack {t}", flush=True)
    result = {
        "quarantined": ssc.runtime.scheduler.quarantined_times(),
        "pending": ssc.pending_batch_times(),
    }
    ssc.stop(stopSparkContext=True)
    print("result " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
