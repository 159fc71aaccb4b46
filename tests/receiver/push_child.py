"""Child process for the SIGKILL test: a push receiver with the receiver WAL on, in a checkpoint directory.

Usage: python -m tests.receiver.push_child CHECKPOINT_DIR [PORT]
(PORT: the port to listen on, so that a restarted child takes its predecessor's; default: any free one)
Prints {"port": N} once the socket is bound. On the line "dump" from stdin it prints {"records": [...]},
every record of every block the (recovered) tracker knows, in block order, read from the WAL by handle.
On the line "hold" it prints {"armed": true}; the next tracker (metadata WAL) write then never happens:
it prints {"held": true} and blocks, so the block is in the receiver WAL and not in the tracker.
On the line "late" it prints {"armed": true}; the next receiver-WAL write then raises WALTimeoutError and
is kept back (`LateCommitLog`); on the line "land" the kept writes are committed and it prints
{"landed": true}.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from dstream.clock import SystemClock
from dstream.config import ReceiverConfig
from dstream.receiver.block_rdd import block_refs, read_block
from dstream.receiver.push import PushReceiver
from dstream.receiver.receiver_tracker import ReceiverTracker
from tests.receiver.fakes import LateCommitLog

STREAM = 0


class HoldingLog:
    """The tracker's metadata WAL, with a switch that makes the next write hang (the SIGKILL window)."""

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped
        self.hold = threading.Event()

    def write(self, data: bytes, time_ms: int) -> Any:
        if self.hold.is_set():
            print(json.dumps({"held": True}), flush=True)
            threading.Event().wait()  # until SIGKILL
        return self.wrapped.write(data, time_ms)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def main() -> None:
    config = ReceiverConfig.from_conf(wal_enabled=True, wal_fsync="always", restart_delay_ms=10)
    late: list[LateCommitLog] = []

    def wrap(stream_id: int, log: Any) -> LateCommitLog:
        late.append(LateCommitLog(log))
        return late[-1]

    tracker = ReceiverTracker(
        SystemClock(), config, checkpoint_dir=sys.argv[1], recover=True, receiver_wal_wrapper=wrap
    )
    holding = HoldingLog(tracker.block_tracker._log)
    tracker.block_tracker._log = holding
    receiver = PushReceiver(port=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    tracker.add_receiver(STREAM, receiver)
    tracker.start()
    started = threading.Event()
    for _ in range(3000):  # recovery (adopting unreported blocks) runs before onStart: wait for it
        if receiver.isStarted():
            break
        started.wait(0.01)
    print(json.dumps({"port": receiver.port, "started": receiver.isStarted()}), flush=True)
    for line in sys.stdin:
        if line.strip() == "dump":
            infos = tracker.block_tracker.get_unallocated_blocks(STREAM)
            refs = block_refs(infos, tracker.wal_location(STREAM))
            print(
                json.dumps({"records": [r for ref in refs for r in read_block(ref, tracker.executor)]}),
                flush=True,
            )
        elif line.strip() == "hold":
            holding.hold.set()
            print(json.dumps({"armed": True}), flush=True)
        elif line.strip() == "late":
            late[-1].time_out_next_write = True
            print(json.dumps({"armed": True}), flush=True)
        elif line.strip() == "land":
            late[-1].land()
            print(json.dumps({"landed": True}), flush=True)
    tracker.stop()


if __name__ == "__main__":
    main()
