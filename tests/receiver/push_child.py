"""Child process for the SIGKILL test: a push receiver with the receiver WAL on, in a checkpoint directory.

Usage: python -m tests.receiver.push_child CHECKPOINT_DIR
Prints {"port": N} once the socket is bound. On the line "dump" from stdin it prints {"records": [...]},
every record of every block the (recovered) tracker knows, in block order, read from the WAL by handle.
"""

from __future__ import annotations

import json
import sys

from dstream.clock import SystemClock
from dstream.receiver.block_rdd import block_refs, read_block
from dstream.receiver.config import ReceiverConfig
from dstream.receiver.push import PushReceiver
from dstream.receiver.receiver_tracker import ReceiverTracker

STREAM = 0


def main() -> None:
    config = ReceiverConfig.from_conf(wal_enabled=True, wal_fsync="always", restart_delay_ms=10)
    tracker = ReceiverTracker(SystemClock(), config, checkpoint_dir=sys.argv[1], recover=True)
    receiver = PushReceiver(port=0)
    tracker.add_receiver(STREAM, receiver)
    tracker.start()
    print(json.dumps({"port": receiver.port}), flush=True)
    for line in sys.stdin:
        if line.strip() == "dump":
            infos = tracker.block_tracker.get_unallocated_blocks(STREAM)
            refs = block_refs(infos, tracker.wal_location(STREAM))
            print(json.dumps({"records": [r for ref in refs for r in read_block(ref)]}), flush=True)
    tracker.stop()


if __name__ == "__main__":
    main()
