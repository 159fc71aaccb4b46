"""Output operations: foreachRDD, pprint and saveAsTextFiles, and the ForEachDStream behind them.

An output stream turns each batch's RDD into one Job for the JobScheduler. User functions get the
batch time as a datetime, as in PySpark. saveAsTextFiles publishes each batch's directory
`<prefix>-<batch_ms>[.<suffix>]/` (`part-NNNNN` per partition plus `_SUCCESS`) atomically: a reader
sees it complete or not at all, and a re-run batch leaves it unchanged. The protocol (directory rename
on local disk, `_SUCCESS` published create-once last on object stores) is in dstream.sinks.text_files.
"""

from __future__ import annotations

from typing import Any

from dstream.sinks.text_files import save_text_batch
from dstream.streaming.arguments import check_callable, check_count
from dstream.streaming.base import DStreamBase
from dstream.streaming.duration import ms_to_datetime, positional_arity
from dstream.streaming.job_scheduler import Job


class ForEachDStream(DStreamBase):
    """An output stream: runs func(time_ms, rdd) as the batch's job when the parent has an RDD."""

    def __init__(self, parent: DStreamBase, func: Any, name: str) -> None:
        super().__init__(parent._ssc, [parent])
        self._func = func
        self._name = name
        self._output_op_id = self._runtime.graph.add_output_stream(self)

    def _generate_job(self, time_ms: int) -> Job | None:
        rdd = self._parents[0]._get_or_compute(time_ms)
        if rdd is None:
            return None
        func = self._func
        return Job(time_ms, self._output_op_id, lambda: func(time_ms, rdd), self._name)


def text_file_name(prefix: str, suffix: str | None, time_ms: int) -> str:
    """`prefix-TIME_MS` or `prefix-TIME_MS.suffix` (PySpark's rddToFileName)."""
    return f"{prefix}-{time_ms}" if suffix is None else f"{prefix}-{time_ms}.{suffix}"


def save_as_text_files(rdd: Any, path: str, storage_options: dict[str, Any]) -> None:
    """Publish one batch's RDD atomically as a text-file directory, unless it is already published."""
    save_text_batch(rdd, path, storage_options)


class OutputOps:
    """Mixin of DStream: output operations."""

    def foreachRDD(self: Any, func: Any) -> None:
        """Run func(rdd) or func(time, rdd) on every batch's RDD; time is a datetime."""
        check_callable("foreachRDD", "func", func)
        if positional_arity(func) == 1:
            ForEachDStream(self, lambda _t, rdd: func(rdd), "foreachRDD")
        else:
            ForEachDStream(self, lambda t, rdd: func(ms_to_datetime(t), rdd), "foreachRDD")

    def pprint(self: Any, num: int = 10) -> None:
        """Print the first `num` elements of every batch, under a header with the batch time."""
        check_count("pprint", "num", num, minimum=0)

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
        self._sc.check_reachable_by_workers(prefix, "saveAsTextFiles prefix")

        def save(time_ms: int, rdd: Any) -> None:
            save_as_text_files(rdd, text_file_name(prefix, suffix, time_ms), storage_options)

        ForEachDStream(self, save, "saveAsTextFiles")
