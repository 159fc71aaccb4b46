"""The built-in demo: a stateful word count over a replayable word generator.

`WordGeneratorStream` is an input stream whose batch at time T is a pure function of (seed, T):
lines are generated inside tasks from a per-(T, partition) seed, so a re-run batch after recovery
sees exactly the same words, and the graph pickles without carrying any data. `run_demo` wires the
pipeline and yields one `DemoBatch` per completed batch, which the CLI renders as a live table.
"""

from __future__ import annotations

import functools
import queue
import random
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dstream.clock import Clock
from dstream.context import Context
from dstream.errors import DStreamValueError
from dstream.streaming.inputs import InputDStream
from dstream.streaming.listener import StreamingListener, StreamingListenerBatchCompleted
from dstream.streaming_context import StreamingContext

WAIT_PER_BATCH_S = 60.0


def generate_lines(
    spec: tuple[int, int, int], *, seed: int, words_per_line: int, vocabulary: int
) -> list[str]:
    """The lines of one partition of one batch: `spec` is (batch_ms, partition, line count)."""
    batch_ms, partition, count = spec
    # A str seed goes through SHA-512 in `random`, so this is the same in every process.
    rng = random.Random(f"{seed}:{batch_ms}:{partition}")
    words = [f"w{i}" for i in range(vocabulary)]
    return [" ".join(rng.choices(words, k=words_per_line)) for _ in range(count)]


class WordGeneratorStream(InputDStream):
    """`lines_per_batch` lines of `words_per_line` words from a `vocabulary`-word vocabulary per batch."""

    def __init__(
        self,
        ssc: Any,
        lines_per_batch: int,
        *,
        words_per_line: int = 10,
        vocabulary: int = 10_000,
        seed: int = 0,
        num_partitions: int | None = None,
    ) -> None:
        for name, value in [("lines_per_batch", lines_per_batch), ("words_per_line", words_per_line),
                            ("vocabulary", vocabulary)]:  # fmt: skip
            if not isinstance(value, int) or value < 1:
                raise DStreamValueError(f"{name} must be a positive int, got {value!r}")
        super().__init__(ssc)
        self._lines_per_batch = lines_per_batch
        self._num_partitions = num_partitions
        self._generate = functools.partial(
            generate_lines, seed=seed, words_per_line=words_per_line, vocabulary=vocabulary
        )

    def _compute(self, time_ms: int) -> Any:
        parts = self._num_partitions or self._sc.defaultParallelism
        share, extra = divmod(self._lines_per_batch, parts)
        specs = [(time_ms, i, share + (1 if i < extra else 0)) for i in range(parts)]
        self._records_per_batch[time_ms] = self._lines_per_batch
        return self._sc.parallelize(specs, parts).flatMap(self._generate)


@dataclass(frozen=True)
class DemoBatch:
    """One completed batch of the demo, as shown in its table."""

    batch_ms: int
    records: int
    processing_ms: int | None
    scheduling_delay_ms: int | None
    distinct_words: int
    top_words: list[tuple[str, int]]


class _BatchFeed(StreamingListener):
    def __init__(self, sink: queue.Queue[Any]) -> None:
        self._sink = sink

    def onBatchCompleted(self, batchCompleted: StreamingListenerBatchCompleted) -> None:
        self._sink.put(("batch", batchCompleted.batchInfo()))


def _update_count(new_values: list[int], last: int | None) -> int:
    return sum(new_values, last or 0)


# Output functions are pickled into metadata checkpoints, so they name their feed by id instead of
# capturing the queue (which holds a lock and cannot be pickled).
_FEEDS: dict[str, queue.Queue[Any]] = {}


def _summarize(feed_id: str, top: int, time: Any, rdd: Any) -> None:
    top_words = rdd.takeOrdered(top, key=lambda kv: (-kv[1], kv[0]))
    feed = _FEEDS.get(feed_id)
    if feed is not None:
        feed.put(("state", (rdd.count(), top_words)))


def run_demo(
    *,
    batches: int,
    batch_seconds: float = 1.0,
    lines_per_batch: int = 20_000,
    master: str = "local[*]",
    checkpoint_dir: str | None = None,
    top: int = 5,
    clock: Clock | None = None,
) -> Iterator[DemoBatch]:
    """Run the stateful word count for `batches` batches, yielding each as it completes."""
    if batches < 1:
        raise DStreamValueError(f"batches must be >= 1, got {batches!r}")
    events: queue.Queue[Any] = queue.Queue()
    with tempfile.TemporaryDirectory(prefix="dstream-demo-") as scratch:
        sc = Context(master, appName="dstream-demo")
        ssc = StreamingContext(sc, batch_seconds, clock=clock)
        ssc.checkpoint(checkpoint_dir or scratch)
        counts = (
            WordGeneratorStream(ssc, lines_per_batch)
            .flatMap(str.split)
            .map(lambda w: (w, 1))
            .reduceByKey(lambda a, b: a + b)
            .updateStateByKey(_update_count)
        )

        feed_id = uuid.uuid4().hex
        _FEEDS[feed_id] = events
        counts.foreachRDD(functools.partial(_summarize, feed_id, top))
        ssc.addStreamingListener(_BatchFeed(events))
        try:
            ssc.start()
            yield from _collect(events, batches)
        finally:
            ssc.stop(stopSparkContext=True, stopGraceFully=False)
            _FEEDS.pop(feed_id, None)


def _collect(events: queue.Queue[Any], batches: int) -> Iterator[DemoBatch]:
    state: tuple[int, list[tuple[str, int]]] | None = None
    for _ in range(batches):
        while True:
            kind, payload = events.get(timeout=WAIT_PER_BATCH_S)
            if kind == "state":
                state = payload
                continue
            info = payload
            distinct, top_words = state if state is not None else (0, [])
            yield DemoBatch(
                batch_ms=info.batchTime().milliseconds(),
                records=info.numRecords(),
                processing_ms=info.processingDelay(),
                scheduling_delay_ms=info.schedulingDelay(),
                distinct_words=distinct,
                top_words=top_words,
            )
            break
