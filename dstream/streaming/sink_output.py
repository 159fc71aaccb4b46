"""`stream.write_to(sink)`: the output operation that writes each batch through a TransactionalSink.

At each batch it offers the streaming context's checkpoint directory to the sink as the commit log's
home and runs `dstream.sinks.runner.write_batch` (skip if committed, stage in tasks, commit once),
with the runtime's fence checked right before the commit (a driver that lost its lease commits nothing).
"""

from __future__ import annotations

from typing import Any

from dstream.errors import DStreamValueError
from dstream.sinks.base import TransactionalSink
from dstream.sinks.runner import check_sink, write_batch
from dstream.streaming.job_scheduler import Job
from dstream.streaming.output import ForEachDStream


class SinkOutputDStream(ForEachDStream):
    """The output stream behind `write_stream`: one sink job per batch."""

    def __init__(self, parent: Any, sink: TransactionalSink) -> None:
        super().__init__(parent, None, f"write_to({sink.output_id})")
        self._sink = sink

    def _generate_job(self, time_ms: int) -> Job | None:
        rdd = self._parents[0]._get_or_compute(time_ms)
        if rdd is None:
            return None
        sink = self._sink
        # Read at job time: getOrCreate sets the checkpoint directory after the pipeline is built.
        location = self._runtime.checkpoint
        ckpt_dir = None if location is None else location.url
        ckpt_options = {} if location is None else dict(location.storage_options)
        runtime = self._runtime

        def run() -> None:
            write_batch(
                sink, time_ms, rdd, checkpoint_dir=ckpt_dir, storage_options=ckpt_options, fence=runtime.fence
            )

        return Job(time_ms, self._output_op_id, run, self._name)


def write_stream(dstream: Any, sink: TransactionalSink) -> None:
    """Write every batch of `dstream` through `sink`, exactly once per (sink.output_id, batch time).

    Raises:
        DStreamValueError: `sink` is not a TransactionalSink, or another output of the pipeline
            already uses its output_id.
    """
    check_sink(sink)
    for other in dstream._runtime.graph.output_streams:
        if isinstance(other, SinkOutputDStream) and other._sink.output_id == sink.output_id:
            raise DStreamValueError(
                f"output_id {sink.output_id!r} is already written by {other._sink!r}; two outputs with "
                "one id would share commit records (give each sink its own output_id)"
            )
    SinkOutputDStream(dstream, sink)
