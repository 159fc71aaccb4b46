"""The patterns of Spark's streaming guide and Python examples, written as a PySpark user writes them.

Each program below is PySpark code with only its imports changed (`SparkContext` is `dstream.Context`),
fed by the test's own loopback server, files or queues, on the system clock, and its output is checked
exactly. The recoverable word count runs as its own process (tests/e2e/guide_recoverable_child.py),
is SIGKILLed after its first lines were counted and restarted from its checkpoint.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dstream import RDD, DStream, StreamingContext
from dstream import Context as SparkContext
from tests.receiver.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0
BATCH_S = 0.2


class LineServer:
    """A loopback TCP server that sends lines to whoever connects (what `nc -lk` does by hand)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._listener.settimeout(WAIT_S)
        self._client: socket.socket | None = None

    def accept(self) -> None:
        """Wait (bounded) for the stream to connect; a later connection replaces the earlier one."""
        if self._client is not None:
            self._client.close()
        self._client, _ = self._listener.accept()

    def send(self, lines: list[str]) -> None:
        assert self._client is not None, "nobody connected"
        self._client.sendall("".join(f"{line}\n" for line in lines).encode())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._listener.close()


@pytest.fixture
def server() -> Iterator[LineServer]:
    s = LineServer()
    yield s
    s.close()


@pytest.fixture
def sc() -> Iterator[SparkContext]:
    context = SparkContext("local[2]", appName="guide")
    yield context
    active = StreamingContext.getActive()
    if active is not None:
        active.stop(stopSparkContext=False)
    context.stop()


def word_counts(lines: list[str], drop: frozenset[str] = frozenset()) -> Counter[str]:
    return Counter(w for line in lines for w in line.split(" ") if w not in drop)


LINES_1 = ["to be or not to be", "that is the question", "a b c to"]
LINES_2 = ["whether tis nobler in the mind", "to suffer c b", "the slings and arrows"]


# -- network_wordcount.py ---------------------------------------------------------------------------


def test_network_wordcount(sc: SparkContext, server: LineServer) -> None:
    out: list[tuple[str, int]] = []
    ssc = StreamingContext(sc, BATCH_S)
    lines = ssc.socketTextStream("127.0.0.1", server.port)
    counts = (
        lines.flatMap(lambda line: line.split(" "))
        .map(lambda word: (word, 1))
        .reduceByKey(lambda a, b: a + b)
    )
    counts.foreachRDD(lambda rdd: out.extend(rdd.collect()))
    ssc.start()
    server.accept()
    server.send(LINES_1)
    expected = word_counts(LINES_1)
    wait_for(lambda: sum_pairs(out) == expected, WAIT_S)
    ssc.stop(stopSparkContext=False, stopGraceFully=True)
    assert sum_pairs(out) == expected


def sum_pairs(pairs: list[tuple[str, int]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for word, n in list(pairs):
        total[word] += n
    return total


# -- stateful_network_wordcount.py, with initialRDD --------------------------------------------------


def test_stateful_network_wordcount_with_an_initial_rdd(
    sc: SparkContext, server: LineServer, tmp_path: Path
) -> None:
    states: list[dict[str, int]] = []
    ssc = StreamingContext(sc, BATCH_S)
    ssc.checkpoint(str(tmp_path / "checkpoint"))
    # RDD with initial state (key, value) pairs
    initialStateRDD = sc.parallelize([("hello", 1), ("world", 1)])

    def updateFunc(new_values, last_sum):
        return sum(new_values) + (last_sum or 0)

    lines = ssc.socketTextStream("127.0.0.1", server.port)
    running_counts = (
        lines.flatMap(lambda line: line.split(" "))
        .map(lambda word: (word, 1))
        .updateStateByKey(updateFunc, initialRDD=initialStateRDD)
    )
    running_counts.foreachRDD(lambda rdd: states.append(dict(rdd.collect())))
    ssc.start()
    server.accept()
    server.send(LINES_1)
    expected = dict(word_counts(LINES_1) + Counter({"hello": 1, "world": 1}))
    wait_for(lambda: bool(states) and states[-1] == expected, WAIT_S)
    server.send(LINES_2)
    expected = dict(Counter(expected) + word_counts(LINES_2))
    wait_for(lambda: states[-1] == expected, WAIT_S)
    ssc.stop(stopSparkContext=False)


# -- queue_stream.py --------------------------------------------------------------------------------


def test_queue_stream(sc: SparkContext) -> None:
    out: list[list[tuple[int, int]]] = []
    ssc = StreamingContext(sc, BATCH_S)
    # Create the queue through which RDDs can be pushed to a QueueInputDStream
    rddQueue = [ssc.sparkContext.parallelize(list(range(1, 1001)), 10) for _ in range(5)]
    inputStream = ssc.queueStream(rddQueue)
    mappedStream = inputStream.map(lambda x: (x % 10, 1))
    reducedStream = mappedStream.reduceByKey(lambda a, b: a + b)
    reducedStream.foreachRDD(lambda rdd: out.append(sorted(rdd.collect())) if not rdd.isEmpty() else None)
    ssc.start()
    wait_for(lambda: len(out) == 5, WAIT_S)
    ssc.stop(stopSparkContext=False)
    assert out == [[(k, 100) for k in range(10)]] * 5


# -- hdfs_wordcount.py (textFileStream) --------------------------------------------------------------


def test_hdfs_wordcount(sc: SparkContext, tmp_path: Path) -> None:
    out: list[tuple[str, int]] = []
    ssc = StreamingContext(sc, BATCH_S)
    lines = ssc.textFileStream(str(tmp_path / "in"))
    counts = lines.flatMap(lambda line: line.split(" ")).map(lambda x: (x, 1)).reduceByKey(lambda a, b: a + b)
    counts.foreachRDD(lambda rdd: out.extend(rdd.collect()))
    (tmp_path / "in").mkdir()
    ssc.start()
    for i, batch in enumerate((LINES_1, LINES_2)):
        staged = tmp_path / "in" / f".part-{i}"  # written under a dot name, renamed into place
        staged.write_text("\n".join(batch) + "\n")
        staged.rename(tmp_path / "in" / f"part-{i}")
    expected = word_counts(LINES_1 + LINES_2)
    wait_for(lambda: sum_pairs(out) == expected, WAIT_S)
    ssc.stop(stopSparkContext=False)
    assert sum_pairs(out) == expected


# -- a join of typed streams (the guide's stream-stream join) -----------------------------------------


def test_a_join_of_streams_with_typed_annotations(sc: SparkContext) -> None:
    def keyed_by_user(events: DStream[tuple[str, float]]) -> DStream[tuple[str, float]]:
        return events.filter(lambda kv: kv[1] >= 0)

    def to_pairs(rdd: RDD[str]) -> RDD[tuple[str, str]]:
        return rdd.map(lambda line: (line.split(",")[0], line.split(",")[1]))

    out: list[tuple[str, tuple[float, str]]] = []
    ssc = StreamingContext(sc, BATCH_S)
    clicks = keyed_by_user(ssc.queueStream([[("ann", 1.5), ("bob", -1.0), ("cid", 2.0)], [("ann", 3.0)]]))
    names = ssc.queueStream([["ann,Ann", "cid,Cid"], ["ann,Ann"]]).transform(to_pairs)
    clicks.join(names).foreachRDD(lambda rdd: out.extend(rdd.collect()))
    ssc.start()
    wait_for(lambda: len(out) == 3, WAIT_S)
    ssc.stop(stopSparkContext=False)
    assert sorted(out) == [("ann", (1.5, "Ann")), ("ann", (3.0, "Ann")), ("cid", (2.0, "Cid"))]


# -- recoverable_network_wordcount.py, SIGKILLed and restarted ------------------------------------------

COUNTS_LINE = re.compile(r"^Counts at time (.+?) (\[.*\])$")


def counted(output: Path) -> Counter[str]:
    """Every count the program appended to its output file, summed over batches."""
    total: Counter[str] = Counter()
    if not output.exists():
        return total
    for line in output.read_text().splitlines():
        match = COUNTS_LINE.match(line)
        if match:  # a torn last line (the kill) is not a full one and is never counted
            for word, n in ast.literal_eval(match.group(2)):
                total[word] += n
    return total


class Program:
    """The child process and what it printed."""

    def __init__(self, server: LineServer, tmp: Path) -> None:
        args = ["127.0.0.1", str(server.port), str(tmp / "checkpoint"), str(tmp / "out.txt")]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.guide_recoverable_child", *args],
            cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.printed: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.printed.append(line.rstrip("\n"))

    def batches_printed(self) -> int:
        return sum(1 for line in list(self.printed) if line.startswith("Counts at time"))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(WAIT_S)
        self._reader.join(WAIT_S)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.mark.chaos
def test_recoverable_network_wordcount_survives_a_sigkill(server: LineServer, tmp_path: Path) -> None:
    drop = frozenset({"a", "b", "c"})
    output = tmp_path / "out.txt"
    first = Program(server, tmp_path)
    try:
        server.accept()
        server.send(LINES_1)
        wait_for(lambda: counted(output) == word_counts(LINES_1, drop), WAIT_S)
        seen = first.batches_printed()
        wait_for(lambda: first.batches_printed() >= seen + 2, WAIT_S)  # a couple of empty batches more
    finally:
        first.kill()
    assert "Creating new context" in first.printed

    second = Program(server, tmp_path)
    try:
        server.accept()  # the recovered socket stream connects again
        server.send(LINES_2)
        expected = word_counts(LINES_1, drop) + word_counts(LINES_2, drop)
        wait_for(lambda: counted(output) == expected, WAIT_S)
        # The singletons were created anew: the accumulator counts the words dropped since the restart.
        dropped_since = sum(word_counts(LINES_2).get(w, 0) for w in drop)
        wait_for(lambda: f"Dropped {dropped_since} word(s) totally" in second.printed, WAIT_S)
    finally:
        second.kill()
    assert "Creating new context" not in second.printed, "the restarted driver did not recover"
    assert not any("Traceback" in line for line in second.printed), "\n".join(second.printed[-40:])
    assert counted(output) == expected
