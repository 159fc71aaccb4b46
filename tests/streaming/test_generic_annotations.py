"""PySpark's DStream and RDD are typing.Generic: pipeline code annotated with them runs unchanged."""

from __future__ import annotations

import typing

from dstream import RDD, DStream
from dstream.clock import ManualClock
from tests.streaming.conftest import collect, run
from tests.support.contexts import engine_context, streaming_context


def parse(lines: DStream[str]) -> DStream[tuple[float, str]]:
    def to_pair(line: str) -> tuple[float, str]:
        price, name = line.split(",")
        return float(price), name

    return lines.map(to_pair)


def cheapest(rdd: RDD[tuple[float, str]]) -> RDD[str]:
    return rdd.filter(lambda pair: pair[0] < 2.0).map(lambda pair: pair[1])


def test_annotated_pipeline_functions_run() -> None:
    with engine_context() as sc, streaming_context(sc, ManualClock(0)) as ssc:
        pairs = parse(ssc.queueStream([["1.5,apple", "3.0,pear"], ["0.5,fig"]]))
        out = collect(pairs.transform(cheapest))
        run(ssc, ssc.clock, 2)  # type: ignore[arg-type]
    assert out == {1000: ["apple"], 2000: ["fig"]}


def test_subscripted_classes_are_generic_aliases_of_the_real_classes() -> None:
    alias = DStream[tuple[float, str]]
    assert typing.get_origin(alias) is DStream and typing.get_args(alias) == (tuple[float, str],)
    assert typing.get_origin(RDD[int]) is RDD
    hints = typing.get_type_hints(parse)
    assert hints["return"] == DStream[tuple[float, str]]
