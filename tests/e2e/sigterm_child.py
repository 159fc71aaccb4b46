"""Driver for the SIGTERM test: pushStream -> append each batch's records to a file, stop on SIGTERM.

Usage: python -m tests.e2e.sigterm_child OUT_FILE
Runs with `spark.streaming.stopGracefullyOnShutdown=true` on the system clock (200 ms batches), prints
the push receiver's port once it listens, then waits in awaitTermination (bounded); a SIGTERM must stop
it gracefully and end it with status 0. Exits 3 if nothing stopped it within RUN_S_MAX.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from dstream import Conf, Context, StreamingContext

BATCH_S = 0.2
RUN_S_MAX = 120.0


def main(out: str) -> None:
    conf = Conf().set("spark.streaming.stopGracefullyOnShutdown", "true")
    ssc = StreamingContext(Context("local[2]", appName="sigterm", conf=conf), BATCH_S)
    stream = ssc.pushStream(host="127.0.0.1", port=0)

    def append(rdd: Any) -> None:
        lines = [r.decode() if isinstance(r, bytes) else r for r in rdd.collect()]
        with open(out, "a", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
            f.flush()
            os.fsync(f.fileno())

    stream.foreachRDD(append)
    ssc.start()
    print(stream.port, flush=True)
    if not ssc.awaitTerminationOrTimeout(RUN_S_MAX):
        sys.exit(3)


if __name__ == "__main__":
    main(sys.argv[1])
