"""socketTextStream: a receiver stream of lines from a TCP server (`SocketReceiver`), like PySpark's.

The stream is a `ReceiverInputDStream`, so the receiver settings apply to it as to any receiver:
`storageLevel` (PySpark's default for this source, MEMORY_AND_DISK_2, keeps a replica), the receiver
WAL (`spark.streaming.receiver.writeAheadLog.enable=true` with a checkpoint directory writes every
block to `<checkpoint>/receivedData/<stream id>/` before it is stored), `spark.streaming.receiver.maxRate`
and backpressure. The server is never acknowledged, so without the WAL lines not yet in a batch are
lost when the driver dies, and with it only lines read but not yet stored are (docs/receivers.md).

Bound: lines stored and not yet allocated to a batch count against the receiver's unallocated-records
budget (`dstream.receiver.unallocated_records_max`); when it is spent and the block queue is full the
reader stops reading the socket, so TCP flow control pushes back on the server, and nothing is dropped.
"""

from __future__ import annotations

from typing import Any

from dstream.errors import DStreamValueError
from dstream.rdd.storage import StorageLevel
from dstream.receiver.input_stream import ReceiverInputDStream
from dstream.receiver.line_splitter import LineSplitter
from dstream.receiver.socket_receiver import SocketReceiver

__all__ = ["LineSplitter", "SocketInputDStream"]


class SocketInputDStream(ReceiverInputDStream):
    """Lines read from hostname:port by a `SocketReceiver`, one batch per batch interval."""

    def __init__(
        self,
        ssc: Any,
        hostname: str,
        port: int,
        storageLevel: StorageLevel = StorageLevel.MEMORY_AND_DISK_2,
        restart_delay_ms: int | None = None,
    ) -> None:
        if not isinstance(hostname, str) or not hostname:
            raise DStreamValueError(f"hostname must be a non-empty str, got {hostname!r}")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise DStreamValueError(f"port must be an int in 1..65535, got {port!r}")
        delay = restart_delay_ms
        if delay is not None and (not isinstance(delay, int) or isinstance(delay, bool) or delay < 1):
            raise DStreamValueError(f"restart_delay_ms must be an int >= 1 or None, got {restart_delay_ms!r}")
        super().__init__(ssc, SocketReceiver(hostname, port, storageLevel, restart_delay_ms))
        self._hostname = hostname
        self._port = port

    @property
    def receiver(self) -> SocketReceiver:
        receiver = self._receiver
        assert isinstance(receiver, SocketReceiver)
        return receiver

    def receiver_name(self) -> str:
        return f"SocketReceiver-{self._hostname}:{self._port}"

    @property
    def received_count(self) -> int:
        """Lines received so far (handed to the block generator, batched or not)."""
        return self.receiver.received_count

    def wait_for_received(self, count: int, timeout_s: float) -> bool:
        """Wait until at least `count` lines have been received; False on timeout."""
        return self.receiver.wait_for_received(count, timeout_s)
