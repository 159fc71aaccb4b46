"""Output operations: foreachRDD, pprint and saveAsTextFiles, and the ForEachDStream behind them.

An output stream turns each batch's RDD into one Job for the JobScheduler. User functions get the
batch time as a datetime, as in PySpark. saveAsTextFiles writes `<prefix>-<batch_ms>[.<suffix>]/`
with one `part-NNNNN` per partition (written by the tasks) and a `_SUCCESS` marker written last; a
directory that already has `_SUCCESS` is left alone, so a batch re-run after recovery does not fail.
"""

from __future__ import annotations

from typing import Any

import fsspec

from dstream.streaming.base import DStreamBase
from dstream.streaming.duration import ms_to_datetime, positional_arity
from dstream.streaming.scheduler import Job

SUCCESS_MARKER = "_SUCCESS"


class ForEachDStream(DStreamBase):
    """An output stream: runs func(time_ms, rdd) as the batch's job when the parent has an RDD."""

    def __init__(self, parent: DStreamBase, func: Any, name: str) -> None:
        super().__init__(parent._ssc, [parent])
        self._func = func
        self._name = name
        self._output_op_id = self._ssc._graph.add_output_stream(self)

    def _generate_job(self, time_ms: int) -> Job | None:
        rdd = self._parents[0]._get_or_compute(time_ms)
        if rdd is None:
            return None
        func = self._func
        return Job(time_ms, self._output_op_id, lambda: func(time_ms, rdd), self._name)


def text_file_name(prefix: str, suffix: str | None, time_ms: int) -> str:
    """`prefix-TIME_MS` or `prefix-TIME_MS.suffix` (PySpark's rddToFileName)."""
    return f"{prefix}-{time_ms}" if suffix is None else f"{prefix}-{time_ms}.{suffix}"


def _write_part(path: str, storage_options: dict[str, Any]) -> Any:
    def write(index: int, records: Any) -> list[str]:
        name = f"{path}/part-{index:05d}"
        with fsspec.open(name, "w", encoding="utf-8", **storage_options) as out:
            for record in records:
                out.write(f"{record}\n")
        return [name]

    return write


def save_as_text_files(rdd: Any, path: str, storage_options: dict[str, Any]) -> None:
    """Write one batch's RDD as a text-file directory, unless it was already written completely."""
    fs, root = fsspec.core.url_to_fs(path, **storage_options)
    if fs.exists(f"{root}/{SUCCESS_MARKER}"):
        return
    fs.makedirs(root, exist_ok=True)
    rdd.mapPartitionsWithIndex(_write_part(path, storage_options)).collect()
    fs.pipe_file(f"{root}/{SUCCESS_MARKER}", b"")


class OutputOps:
    """Mixin of DStream: output operations."""

    def foreachRDD(self: Any, func: Any) -> None:
        """Run func(rdd) or func(time, rdd) on every batch's RDD; time is a datetime."""
        if positional_arity(func) == 1:
            ForEachDStream(self, lambda _t, rdd: func(rdd), "foreachRDD")
        else:
            ForEachDStream(self, lambda t, rdd: func(ms_to_datetime(t), rdd), "foreachRDD")

    def pprint(self: Any, num: int = 10) -> None:
        """Print the first `num` elements of every batch, under a header with the batch time."""

        def take_and_print(time: Any, rdd: Any) -> None:
            taken = rdd.take(num + 1)
            print("-------------------------------------------")
            print(f"Time: {time}")
            print("-------------------------------------------")
            for record in taken[:num]:
                print(record)
            if len(taken) > num:
                print("...")
            print("")

        ForEachDStream(self, lambda t, rdd: take_and_print(ms_to_datetime(t), rdd), "pprint")

    def saveAsTextFiles(self: Any, prefix: str, suffix: str | None = None, **storage_options: Any) -> None:
        """Save every batch as the text-file directory `prefix-TIME_MS[.suffix]`."""

        def save(time_ms: int, rdd: Any) -> None:
            save_as_text_files(rdd, text_file_name(prefix, suffix, time_ms), storage_options)

        ForEachDStream(self, save, "saveAsTextFiles")
