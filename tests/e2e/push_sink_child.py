"""Checkpointed driver for the e2e test: pushStream (receiver WAL on) -> map -> TransactionalFileSink.

Usage: python -m tests.e2e.push_sink_child CKPT_DIR OUT_DIR PORT STOP_FILE [PORT_FILE]
It recovers from CKPT_DIR with getOrCreate when a checkpoint exists, else builds the pipeline; runs on
the system clock with 200 ms batches; prints "started" once the push receiver listens; and stops
gracefully once STOP_FILE exists (the parent creates it after every record was acknowledged and
committed). The parent SIGKILLs it at random moments or it kills itself at a DSTREAM_CRASH_POINT.

With PORT_FILE the push receiver moves: a recovered receiver listens on PORT, not on the port it was
checkpointed with (as a receiver restarted on another Dask worker does, issue 14), and the child writes
the port it listens on to PORT_FILE (replaced atomically) before it prints "started", for the parent's
resolver to read.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from dstream import Conf, Context, StreamingContext
from dstream.receiver.input_stream import PushInputDStream
from dstream.sinks import TransactionalFileSink
from dstream.streaming.listener import StreamingListener

BATCH_S = 0.2
RUN_S_MAX = 120.0
OUTPUT_ID = "pushed"


class ReceiverLog(StreamingListener):
    """Prints the receiver's starts, errors and stops to stderr (the parent keeps it as the driver log)."""

    def _print(self, what: str, event: Any) -> None:
        info = event.receiverInfo()
        print(f"receiver {what}: {info.lastErrorMessage()} {info.lastError()}".rstrip(), file=sys.stderr)

    def onReceiverStarted(self, receiverStarted: Any) -> None:
        self._print("started", receiverStarted)

    def onReceiverError(self, receiverError: Any) -> None:
        self._print("error", receiverError)

    def onReceiverStopped(self, receiverStopped: Any) -> None:
        self._print("stopped", receiverStopped)


def to_record(raw: Any) -> dict[str, str]:
    return {"id": raw.decode() if isinstance(raw, bytes) else raw}


def move_receiver(ssc: StreamingContext, port: int, port_file: str) -> None:
    """Put the (recovered) push receiver on `port` before it starts, and publish that port."""
    for stream in ssc.graph.input_streams:
        if isinstance(stream, PushInputDStream):
            stream.getReceiver().port = port  # bound at the receiver's start
    staged = f"{port_file}.tmp"
    Path(staged).write_text(str(port))
    os.replace(staged, port_file)


def main(ckpt: str, out: str, port: int, stop_file: str, port_file: str | None = None) -> None:
    def setup() -> StreamingContext:
        conf = Conf().set("spark.streaming.receiver.writeAheadLog.enable", "true")
        ssc = StreamingContext(Context("local[2]", appName="push-e2e", conf=conf), BATCH_S)
        ssc.pushStream(host="127.0.0.1", port=port).map(to_record).write_to(
            TransactionalFileSink(out, output_id=OUTPUT_ID)
        )
        return ssc

    ssc = StreamingContext.getOrCreate(ckpt, setup)
    if port_file is not None:
        move_receiver(ssc, port, port_file)
    ssc.addStreamingListener(ReceiverLog())
    ssc.start()
    print("started", flush=True)
    stopped = threading.Event()
    for _ in range(int(RUN_S_MAX / BATCH_S)):  # bounded: the parent always stops us well before
        if Path(stop_file).exists() or stopped.wait(BATCH_S):
            break
    ssc.stop(stopSparkContext=True, stopGraceFully=True)


if __name__ == "__main__":
    main(*sys.argv[1:3], int(sys.argv[3]), *sys.argv[4:6])
