"""The pipelines under test: `setup()` factories for `StreamingContext.getOrCreate`, one per kind.

Each pipeline reads the workload's records (`chaos.records`) from push receivers (receiver WAL on) or
from a replayable file directory, and writes per batch, through one sink transaction, the ids of the
records it consumed and its result rows (the chaos contract's rows):

- stateless: (rid, key, seq, value) per consumed record;
- stateful: updateStateByKey of (sum, count, max seq) per key; after each batch one row
  (key, sum, count, max_seq) per key with state;
- windowed: reduceByKeyAndWindow(add, subtract, window, slide) of the values, zero sums filtered out;
  rows (key, sum);
- join: streams "a" and "b" joined on the key per batch; rows (key, rid_a, rid_b).

Stateful streams are data-checkpointed every `checkpoint_interval_ms` (1 to 2 s in chaos runs), so
faults land between checkpoints often. The functions are module-level, so the checkpointed graph
refers to them by name.
"""

from __future__ import annotations

import operator
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos.records import consumed, decode, kv_key, row
from chaos.spec import RunSpec
from dstream import Conf, Context, DStream, StreamingContext
from dstream.sinks import AtLeastOnceFileSink, SQLiteKeyValueSink, TransactionalFileSink
from dstream.sinks.base import Transaction

OUTPUT_ID = "chaos"
SQLITE_FILE = "chaos.sqlite"
SQLITE_TABLE = "chaos_output"


def conf_for(spec: RunSpec) -> Conf:
    """The engine configuration of a chaos run's driver."""
    conf = Conf().setMaster(spec.master).setAppName(f"chaos-{spec.pipeline}")
    conf.set("spark.streaming.receiver.writeAheadLog.enable", str(spec.receiver_wal).lower())
    conf.set("spark.streaming.receiverRestartDelay", f"{spec.receiver_restart_delay_ms}ms")
    conf.set("spark.streaming.blockInterval", "100ms")
    for key, value in spec.conf.items():
        conf.set(key, value)
    return conf


class WriterTaggedFileSink(TransactionalFileSink):
    """The transactional file sink, whose commit records say which driver committed and when.

    Each commit record's info gets "writer": {"pid": the committing driver's pid, "t": seconds since
    the run started on CLOCK_MONOTONIC, read right before the record is written}, on the history's
    clock, so the checker can tell a commit a paused (fenced) driver made after it woke
    (`chaos.checker.zombies`).
    """

    def __init__(self, url: str, *, output_id: str, t0_monotonic: float) -> None:
        super().__init__(url, output_id=output_id)
        self.t0_monotonic = t0_monotonic

    def commit_info(self, txn: Transaction) -> dict[str, Any]:
        return {"writer": {"pid": os.getpid(), "t": round(time.monotonic() - self.t0_monotonic, 6)}}


def make_sink(spec: RunSpec) -> Any:
    """The sink the spec names, on `spec.output`."""
    if spec.sink == "transactional":
        return WriterTaggedFileSink(spec.output, output_id=OUTPUT_ID, t0_monotonic=spec.t0_monotonic)
    if spec.sink == "canary":
        return AtLeastOnceFileSink(spec.output, output_id=OUTPUT_ID)
    return SQLiteKeyValueSink(str(Path(spec.output, SQLITE_FILE)), SQLITE_TABLE, output_id=OUTPUT_ID)


# -- record functions (module level: the checkpointed graph names them) ----------------------------


def keyed(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return record["key"], record


def value_and_seq(record: dict[str, Any]) -> tuple[str, tuple[int, int]]:
    return record["key"], (record["value"], record["seq"])


def key_value(record: dict[str, Any]) -> tuple[str, int]:
    return record["key"], record["value"]


def key_rid(record: dict[str, Any]) -> tuple[str, str]:
    return record["key"], record["rid"]


def update_aggregate(
    new: list[tuple[int, int]], state: tuple[int, int, int] | None
) -> tuple[int, int, int] | None:
    """(sum, count, max seq) of a key's values so far."""
    total, count, max_seq = state or (0, 0, 0)
    for value, seq in new:
        total, count, max_seq = total + value, count + 1, max(max_seq, seq)
    return (total, count, max_seq) if count else None


def stateless_row(record: dict[str, Any]) -> dict[str, Any]:
    return row(record["rid"], record["key"], record["seq"], record["value"])


def stateful_row(pair: tuple[str, tuple[int, int, int]]) -> dict[str, Any]:
    key, (total, count, max_seq) = pair
    return row(key, total, count, max_seq)


def window_row(pair: tuple[str, int]) -> dict[str, Any]:
    return row(pair[0], pair[1])


def join_row(pair: tuple[str, tuple[str, str]]) -> dict[str, Any]:
    key, (rid_a, rid_b) = pair
    return row(key, rid_a, rid_b)


def nonzero(pair: tuple[str, int]) -> bool:
    return pair[1] != 0


def to_kv(time: datetime, rdd: Any) -> Any:
    """Output records as the SQLite sink's (key, count) pairs, keyed by the batch time."""
    batch_ms = round(time.timestamp() * 1000)
    return rdd.map(lambda out: (kv_key(batch_ms, out), 1)).reduceByKey(operator.add)


# -- the pipelines ---------------------------------------------------------------------------------


def _inputs(ssc: StreamingContext, spec: RunSpec) -> dict[str, DStream[Any]]:
    if spec.source == "files":
        return {"a": ssc.textFileStream(spec.input_dir).map(decode)}
    return {name: ssc.pushStream(port=spec.ports[name]).map(decode) for name in spec.streams}


def _rows(spec: RunSpec, inputs: dict[str, DStream[Any]]) -> Any:
    interval_s = spec.checkpoint_interval_ms / 1000
    a = inputs["a"]
    if spec.pipeline == "stateless":
        return a.map(stateless_row)
    if spec.pipeline == "stateful":
        state = a.map(value_and_seq).updateStateByKey(update_aggregate, numPartitions=2)
        return state.checkpoint(interval_s).map(stateful_row)
    if spec.pipeline == "windowed":
        assert spec.window_ms is not None and spec.slide_ms is not None
        window = a.map(key_value).reduceByKeyAndWindow(
            operator.add, operator.sub, spec.window_ms / 1000, spec.slide_ms / 1000, numPartitions=2
        )
        return window.checkpoint(interval_s).filter(nonzero).map(window_row)
    return a.map(key_rid).join(inputs["b"].map(key_rid), numPartitions=2).map(join_row)


def workload_inputs(ssc: StreamingContext, spec: RunSpec) -> dict[str, DStream[Any]]:
    """The workload's records as dicts, by stream name ("a", and "b" for the join), for a user's setup."""
    return _inputs(ssc, spec)


def write_checked(
    ssc: StreamingContext, spec: RunSpec, inputs: dict[str, DStream[Any]], rows: DStream[Any] | None
) -> None:
    """Write, per batch through the spec's sink, the ids of every record of `inputs` and the `rows`.

    `rows` is a stream of tuples (or lists): the rows the checker recomputes for `spec.pipeline`
    (None: no rows, only the record-level checks).
    """
    out = ssc.union(*(stream.map(consumed) for stream in inputs.values()))
    if rows is not None:
        out = out.union(rows.map(as_row))
    if spec.sink == "sqlite":
        out = out.transform(to_kv)
    out.write_to(make_sink(spec))


def as_row(values: Any) -> dict[str, Any]:
    return row(*values)


def build(ssc: StreamingContext, spec: RunSpec) -> None:
    """Add the spec's pipeline and its sink to `ssc`."""
    inputs = _inputs(ssc, spec)
    out = ssc.union(*(stream.map(consumed) for stream in inputs.values())).union(_rows(spec, inputs))
    if spec.sink == "sqlite":
        out = out.transform(to_kv)
    out.write_to(make_sink(spec))


def make_setup(spec: RunSpec) -> Callable[[], StreamingContext]:
    """The `setup` function of the spec's pipeline, for `StreamingContext.getOrCreate`."""

    def setup() -> StreamingContext:
        ssc = StreamingContext(Context(conf=conf_for(spec)), spec.batch_ms / 1000)
        ssc.checkpoint(spec.checkpoint, **spec.checkpoint_options)
        build(ssc, spec)
        return ssc

    return setup
