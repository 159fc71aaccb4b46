"""Data lives where it is computed: what crosses the task boundary, and lost blocks on the listener bus.

The local backend pickles every task and every outcome; `LocalBackend.tap_payloads` shows each payload.
Over a stateful word count of 20 batches, no payload holds a word: input partitions, state partitions
and shuffle buckets stay in the block manager, and tasks carry references, actions' results (counts
here) and metadata only. A lost block is recovered and reported as `StreamingListenerBlockRecovered`.
"""

from __future__ import annotations

import operator
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from dstream.backends.block_manager import ShuffleBlockId
from dstream.backends.local import LocalBackend
from dstream.clock import ManualClock
from dstream.context import Context
from dstream.streaming import StreamingContext, StreamingListener
from tests.streaming.conftest import WAIT_S, run

BATCHES = 20
WORDS_PER_BATCH = 300
MARKER = b"tok"


def batch_lines(batch: int) -> list[str]:
    """Lines of words unique to each batch (so the state grows) plus a word every batch repeats."""
    words = [f"tok{batch}x{i % (WORDS_PER_BATCH // 2)}" for i in range(WORDS_PER_BATCH)]
    return [" ".join(["tokcommon", *words[i : i + 10]]) for i in range(0, len(words), 10)]


def _add(values: list[int], state: int | None) -> int:
    return sum(values, state or 0)


class Payloads:
    """Counts the bytes of every task and outcome payload, and those that hold a word."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes: Counter[str] = Counter()
        self.count: Counter[str] = Counter()
        self.with_words: list[tuple[str, int]] = []
        self.on = True

    def __call__(self, kind: str, nbytes: int, payload: bytes) -> None:
        if not self.on:
            return
        with self.lock:
            self.bytes[kind] += nbytes
            self.count[kind] += 1
            if MARKER in payload:
                self.with_words.append((kind, nbytes))


def test_a_stateful_word_count_ships_references_never_partitions_or_buckets(
    sc: Context, clock: ManualClock, ssc: StreamingContext, tmp_path: Path
) -> None:
    backend = sc._backend
    assert isinstance(backend, LocalBackend)
    payloads = Payloads()
    backend.tap_payloads(payloads)
    ssc.checkpoint(str(tmp_path / "ckpt"))
    lines = ssc.queueStream([sc.parallelize(batch_lines(b), 2) for b in range(BATCHES)])
    counts = lines.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(operator.add, 2)
    state = counts.updateStateByKey(_add)
    sizes: dict[int, int] = {}
    state.foreachRDD(lambda t, rdd: sizes.__setitem__(len(sizes), rdd.count()))
    last: list[Any] = []
    state.foreachRDD(lambda rdd: last.__setitem__(slice(None), [rdd]))
    run(ssc, clock, BATCHES)
    payloads.on = False
    expected: Counter[str] = Counter()
    for b in range(BATCHES):
        expected.update(w for line in batch_lines(b) for w in line.split())
    assert dict(last[0].collect()) == dict(expected)  # exact (this collect is not counted)
    assert sizes[BATCHES - 1] == len(expected) > BATCHES * 100, "the state grew with every batch"
    assert payloads.with_words == [], "a partition, a bucket or a state block crossed the task boundary"
    # What did cross: per task, its code and references; per outcome, a count or a MapStatus.
    assert payloads.count["task"] == payloads.count["result"] >= BATCHES * 4  # map and count tasks
    tasks, sent, back = payloads.count["task"], payloads.bytes["task"], payloads.bytes["result"]
    print(f"{tasks} tasks: {sent:,} B in, {back:,} B out")


class Recovered(StreamingListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.seen = threading.Event()

    def onBlockRecovered(self, blockRecovered: Any) -> None:
        self.events.append((blockRecovered.block(), blockRecovered.recoveredBy()))
        self.seen.set()


def test_a_lost_shuffle_output_is_recomputed_and_reported_on_the_listener_bus(
    sc: Context, clock: ManualClock, ssc: StreamingContext
) -> None:
    listener = Recovered()
    ssc.addStreamingListener(listener)
    results: list[list[Any]] = []

    def lose_then_collect(rdd: Any) -> None:
        counts = rdd.map(lambda w: (w, 1)).reduceByKey(operator.add, 2)
        first = sorted(counts.collect())
        bm = sc._backend.block_manager
        for block in list(bm.block_ids()):
            if isinstance(block, ShuffleBlockId):
                bm.remove(block)  # as a dead executor would
        results.append([first, sorted(counts.collect())])

    ssc.queueStream([["a", "b", "a"]]).foreachRDD(lose_then_collect)
    run(ssc, clock, 1)
    assert results == [[[("a", 2), ("b", 1)], [("a", 2), ("b", 1)]]]
    assert listener.seen.wait(WAIT_S)
    block, how = listener.events[0]
    assert block.startswith("shuffle_") and how == "lineage"
