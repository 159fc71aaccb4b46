"""The driver the SIGKILL tests kill: `python -m tests.recovery.chaos_child CKPT INPUT OUT READY_DIR`.

A stateful word count on real time (SystemClock, 250 ms batches): textFileStream(INPUT) ->
flatMap(split) -> updateStateByKey (data-checkpointed every 2 batches) -> saveAsTextFiles(OUT).
CKPT may be an fsspec URL (options as JSON in CHAOS_CKPT_OPTIONS); CHAOS_MASTER picks the master
(default local[2]; local-cluster[2] runs the tasks on an embedded Dask cluster that dies with the
child). It recovers from CKPT with getOrCreate, writes READY_DIR/ready-<pid> once started, and runs
until it is killed (or until its stdin closes). DSTREAM_CRASH_POINT in its environment kills it at a named
point of the checkpoint protocol.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from dstream.context import Conf, Context
from dstream.streaming import StreamingContext

BATCH_S = 0.25
RUN_LIMIT_S = 120.0


def running_count(values: list[int], state: int | None) -> int:
    return sum(values) + (state or 0)


def split_words(line: str) -> list[str]:
    return line.split()


def pair(word: str) -> tuple[str, int]:
    return (word, 1)


def make_setup(ckpt: str, input_dir: str, out_prefix: str, options: dict[str, object], master: str) -> object:
    def setup() -> StreamingContext:
        conf = Conf().setMaster(master).setAppName("chaos-wordcount")
        # Object stores: a restarted driver waits for the killed one's lease to expire.
        conf.set("dstream.checkpoint.leaseTimeoutS", "1.5").set("dstream.checkpoint.leaseWaitS", "30")
        sc = Context.getOrCreate(conf)
        ssc = StreamingContext(sc, BATCH_S)
        ssc.checkpoint(ckpt, **options)
        words = ssc.textFileStream(input_dir).flatMap(split_words).map(pair)
        state = words.updateStateByKey(running_count, numPartitions=2).checkpoint(2 * BATCH_S)
        state.saveAsTextFiles(out_prefix)
        return ssc

    return setup


def main(argv: list[str]) -> int:
    ckpt, input_dir, out_prefix, ready_dir = argv
    options = json.loads(os.environ.get("CHAOS_CKPT_OPTIONS", "{}"))
    setup = make_setup(ckpt, input_dir, out_prefix, options, os.environ.get("CHAOS_MASTER", "local[2]"))
    ssc = StreamingContext.getOrCreate(ckpt, setup, storage_options=options)
    ssc.start()
    tmp = Path(ready_dir, f".ready-{os.getpid()}")
    tmp.write_text("recovered" if ssc.recovered else "new")
    tmp.rename(Path(ready_dir, f"ready-{os.getpid()}"))  # the parent never sees it half-written
    sys.stdin.read()  # EOF: the parent is done with us
    ssc.stop(stopGraceFully=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
