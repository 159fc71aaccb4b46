"""DStreamGraph: the static template of a streaming application.

It holds every DStream in registration order (a stream's id is its position, stable across runs of
the same program, never `id()`), the input streams and the output streams, the zero time and the
remember duration. At each batch time it asks the output streams for jobs. The graph pickles with
cloudpickle for metadata checkpoints: generated RDDs, the context, locks and threads are transient
and dropped by each stream's `__getstate__`; `set_context` reattaches a restored graph.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from dstream.errors import DStreamValueError
from dstream.streaming.job_scheduler import Job
from dstream.streaming.listener import StreamInputInfo


class GraphStream(Protocol):
    """What the graph calls on every stream (DStreamBase implements it)."""

    _id: int
    _remember_ms: int | None
    _checkpoint_ms: int | None
    _ssc: Any

    def _initialize(self, zero_time_ms: int) -> None: ...

    def _remember(self, duration_ms: int | None) -> None: ...

    def _validate_at_start(self) -> None: ...

    def _clear_metadata(self, time_ms: int) -> None: ...

    def _restore_checkpointed(self, time_ms: int, rdd: Any) -> None: ...


class GraphInputStream(GraphStream, Protocol):
    """An input stream: started and stopped with the graph, reports what it put into each batch."""

    def _start(self) -> None: ...

    def _stop(self) -> None: ...

    def _input_info(self, time_ms: int) -> StreamInputInfo | None: ...

    def _generated_rdd(self, time_ms: int) -> Any: ...


class GraphOutputStream(GraphStream, Protocol):
    """An output stream: one job per batch time at most."""

    def _generate_job(self, time_ms: int) -> Job | None: ...


class DStreamGraph:
    """The DStreams of one StreamingContext and what is needed to generate a batch's jobs."""

    def __init__(self, batch_ms: int) -> None:
        self.batch_ms = batch_ms
        self.streams: list[GraphStream] = []
        self.input_streams: list[GraphInputStream] = []
        self.output_streams: list[GraphOutputStream] = []
        self.zero_time_ms: int | None = None
        self.start_time_ms: int | None = None
        self.remember_ms: int | None = None
        self._lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def register(self, stream: GraphStream) -> int:
        """Add a stream; returns its id (its registration index)."""
        with self._lock:
            self.streams.append(stream)
            return len(self.streams) - 1

    def add_input_stream(self, stream: GraphInputStream) -> None:
        """Mark a registered stream as an input stream."""
        with self._lock:
            self.input_streams.append(stream)

    def add_output_stream(self, stream: GraphOutputStream) -> int:
        """Mark a registered stream as an output stream; returns its output operation id."""
        with self._lock:
            self.output_streams.append(stream)
            return len(self.output_streams) - 1

    def remember(self, remember_ms: int) -> None:
        """Keep every stream's RDDs for at least `remember_ms` (ssc.remember)."""
        self.remember_ms = remember_ms

    def validate(self) -> None:
        """Check the graph can run (at start)."""
        if not self.output_streams:
            raise DStreamValueError("No output operations registered, so nothing to execute")

    def start(self, zero_time_ms: int) -> None:
        """Initialize every stream at `zero_time_ms` and start the inputs."""
        self.validate()
        self.zero_time_ms = zero_time_ms
        self.start_time_ms = zero_time_ms
        self._start_streams(zero_time_ms)

    def restart(self) -> None:
        """Start a graph restored from a checkpoint: same zero time, inputs started again."""
        if self.zero_time_ms is None:
            raise DStreamValueError("cannot restart a graph that was never started (no zero time)")
        self.validate()
        self._start_streams(self.zero_time_ms)

    def _start_streams(self, zero_time_ms: int) -> None:
        for stream in self.output_streams:
            stream._initialize(zero_time_ms)
        for stream in self.output_streams:
            stream._remember(self.remember_ms)
        for stream in self.output_streams:
            stream._validate_at_start()
        for source in self.input_streams:
            source._start()

    def stop(self) -> None:
        """Stop the input streams (their threads, if any)."""
        for source in self.input_streams:
            source._stop()

    def generate_jobs(self, time_ms: int) -> list[Job]:
        """One job per output stream that has an RDD at `time_ms`, in output order."""
        jobs = []
        for stream in self.output_streams:
            job = stream._generate_job(time_ms)
            if job is not None:
                jobs.append(job)
        return jobs

    def input_infos(self, time_ms: int) -> dict[int, StreamInputInfo]:
        """What each input stream put into batch `time_ms`."""
        infos = {}
        for source in self.input_streams:
            info = source._input_info(time_ms)
            if info is not None:
                infos[source._id] = info
        return infos

    def input_rdds(self, time_ms: int) -> dict[int, Any]:
        """Each input stream's RDD of batch `time_ms`, where it was computed (what a quarantine copies)."""
        rdds = {}
        for source in self.input_streams:
            rdd = source._generated_rdd(time_ms)
            if rdd is not None:
                rdds[source._id] = rdd
        return rdds

    def clear_metadata(self, time_ms: int) -> None:
        """Forget RDDs older than each stream's remember duration."""
        for stream in self.output_streams:
            stream._clear_metadata(time_ms)

    def set_context(self, ssc: Any) -> None:
        """Reattach every stream to a context (after unpickling a graph)."""
        for stream in self.streams:
            stream._ssc = ssc

    def max_input_remember_ms(self) -> int:
        """The longest remember duration of any input stream (what received-block cleanup must keep)."""
        return max((s._remember_ms or 0 for s in self.input_streams), default=0)

    def max_remember_ms(self) -> int:
        """The longest remember duration of any stream (cleanup margin for the checkpoint issue)."""
        return max((s._remember_ms or 0 for s in self.streams), default=0)
