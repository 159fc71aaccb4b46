"""A driver process for the recovery tests: `python -m tests.recovery.driver_child MODE DIR ...`.

Modes:
  hold DIR READY_FILE   start a checkpointed context on DIR, create READY_FILE, then wait (to be killed)
  start DIR             try to start a checkpointed context on DIR; print the error type and message
"""

from __future__ import annotations

import sys
from pathlib import Path

from dstream.clock import ManualClock
from tests.recovery.support import ReplayInputDStream, new_context, record


def _context(path: str) -> object:
    ssc = new_context(ManualClock(0), path)
    ReplayInputDStream(ssc, [[1]]).foreachRDD(record)
    return ssc


def main(argv: list[str]) -> int:
    mode, path = argv[0], argv[1]
    ssc = _context(path)
    if mode == "hold":
        ssc.start()  # type: ignore[attr-defined]
        Path(argv[2]).write_text("ready")
        sys.stdin.read()  # until the parent closes stdin or kills us
        return 0
    try:
        ssc.start()  # type: ignore[attr-defined]
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}")
        return 3
    print("started")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
