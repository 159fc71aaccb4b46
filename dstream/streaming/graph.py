"""DStreamGraph: the static template of a streaming application.

It holds every DStream in registration order (a stream's id is its position, stable across runs of
the same program, never `id()`), the input streams and the output streams, the zero time and the
remember duration. At each batch time it asks the output streams for jobs. The graph pickles with
cloudpickle for metadata checkpoints: generated RDDs, the context, locks and threads are transient
and dropped by each stream's `__getstate__`; `set_context` reattaches a restored graph.
"""

from __future__ import annotations

import threading
from typing import Any

from dstream.errors import DStreamValueError
from dstream.streaming.listener import StreamInputInfo


class DStreamGraph:
    """The DStreams of one StreamingContext and what is needed to generate a batch's jobs."""

    def __init__(self, batch_ms: int) -> None:
        self.batch_ms = batch_ms
        self.streams: list[Any] = []
        self.input_streams: list[Any] = []
        self.output_streams: list[Any] = []
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

    def register(self, stream: Any) -> int:
        """Add a stream; returns its id (its registration index)."""
        with self._lock:
            self.streams.append(stream)
            return len(self.streams) - 1

    def add_input_stream(self, stream: Any) -> None:
        """Mark a registered stream as an input stream."""
        with self._lock:
            self.input_streams.append(stream)

    def add_output_stream(self, stream: Any) -> int:
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
        for stream in self.output_streams:
            stream._initialize(zero_time_ms)
        for stream in self.output_streams:
            stream._remember(self.remember_ms)
        for stream in self.output_streams:
            stream._validate_at_start()
        for stream in self.input_streams:
            stream._start()

    def restart(self) -> None:
        """Start a graph restored from a checkpoint: same zero time, inputs started again."""
        if self.zero_time_ms is None:
            raise DStreamValueError("cannot restart a graph that was never started (no zero time)")
        self.validate()
        for stream in self.output_streams:
            stream._initialize(self.zero_time_ms)
        for stream in self.output_streams:
            stream._remember(self.remember_ms)
        for stream in self.output_streams:
            stream._validate_at_start()
        for stream in self.input_streams:
            stream._start()

    def stop(self) -> None:
        """Stop the input streams (their threads, if any)."""
        for stream in self.input_streams:
            stream._stop()

    def generate_jobs(self, time_ms: int) -> list[Any]:
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
        for stream in self.input_streams:
            info = stream._input_info(time_ms)
            if info is not None:
                infos[stream._id] = info
        return infos

    def clear_metadata(self, time_ms: int) -> None:
        """Forget RDDs older than each stream's remember duration."""
        for stream in self.output_streams:
            stream._clear_metadata(time_ms)

    def set_context(self, ssc: Any) -> None:
        """Reattach every stream to a context (after unpickling a graph)."""
        for stream in self.streams:
            stream._ssc = ssc

    def max_remember_ms(self) -> int:
        """The longest remember duration of any stream (cleanup margin for the checkpoint issue)."""
        return max((s._remember_ms or 0 for s in self.streams), default=0)
