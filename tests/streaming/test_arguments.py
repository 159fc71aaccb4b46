"""Bad arguments to DStream methods fail when the pipeline is built, naming the value."""

from __future__ import annotations

import operator
from pathlib import Path

import pytest

from dstream.errors import DStreamValueError
from tests.streaming.conftest import collect, run

BAD_CALLS = [
    (lambda s: s.repartition(0), DStreamValueError, "repartition: numPartitions must be an int >= 1, got 0"),
    (
        lambda s: s.repartition(None),
        DStreamValueError,
        "repartition: numPartitions must be an int >= 1, got None",
    ),
    (lambda s: s.pprint(-1), DStreamValueError, "pprint: num must be an int >= 0, got -1"),
    (lambda s: s.pprint("3"), DStreamValueError, "pprint: num must be an int >= 0, got '3'"),
    (lambda s: s.updateStateByKey(5), TypeError, "updateStateByKey: updateFunc must be a callable, got 5"),
    (lambda s: s.updateStateByKey(max, 0), DStreamValueError, "updateStateByKey: numPartitions .* got 0"),
    (lambda s: s.reduceByKey(None), TypeError, "reduceByKey: func must be a callable, got None"),
    (
        lambda s: s.reduceByKey(operator.add, True),
        DStreamValueError,
        "reduceByKey: numPartitions .* got True",
    ),
    (lambda s: s.map("len"), TypeError, "map: f must be a callable, got 'len'"),
    (lambda s: s.flatMap(1), TypeError, "flatMap: f must be a callable, got 1"),
    (lambda s: s.filter(None), TypeError, "filter: f must be a callable, got None"),
    (lambda s: s.mapPartitions([]), TypeError, r"mapPartitions: f must be a callable, got \[\]"),
    (lambda s: s.reduce(0), TypeError, "reduce: func must be a callable, got 0"),
    (lambda s: s.transform(5), TypeError, "transform: func must be a callable, got 5"),
    (lambda s: s.foreachRDD("print"), TypeError, "foreachRDD: func must be a callable, got 'print'"),
    (lambda s: s.mapValues(2), TypeError, "mapValues: f must be a callable, got 2"),
    (lambda s: s.groupByKey(-2), DStreamValueError, "groupByKey: numPartitions .* got -2"),
    (lambda s: s.join(s, 0), DStreamValueError, "join: numPartitions .* got 0"),
    (
        lambda s: s.partitionBy(2, 7),
        TypeError,
        "partitionBy: partitionFunc must be a callable or None, got 7",
    ),
    (lambda s: s.combineByKey(list, None, operator.add), TypeError, "combineByKey: mergeValue must be"),
    (lambda s: s.reduceByKeyAndWindow("+", None, 2.0), TypeError, "reduceByKeyAndWindow: func must be"),
    (
        lambda s: s.reduceByKeyAndWindow(operator.add, 3, 2.0),
        TypeError,
        "invFunc must be a callable or None, got 3",
    ),
    (lambda s: s.reduceByWindow(None, None, 2.0, 1.0), TypeError, "reduceByWindow: reduceFunc must be"),
]


@pytest.mark.parametrize(("build", "error", "match"), BAD_CALLS)
def test_a_bad_argument_fails_at_build_time(ssc, build, error, match):
    stream = ssc.queueStream([[("a", 1)]])
    with pytest.raises(error, match=match):
        build(stream)


@pytest.mark.parametrize("directory", [5, None, "", b"/tmp"])
def test_text_file_stream_needs_a_path(ssc, directory):
    with pytest.raises(DStreamValueError, match=f"directory must be a non-empty path .*got {directory!r}"):
        ssc.textFileStream(directory)


def test_valid_pyspark_arguments_are_still_accepted(ssc, clock, tmp_path: Path):
    stream = ssc.queueStream([[("a", 1), ("a", 2), ("b", 3)]])
    out = collect(stream.repartition(1).reduceByKey(operator.add, None))
    windowed = collect(stream.reduceByKeyAndWindow(operator.add, None, 1.0, 1.0, None, None))
    stream.pprint(0)
    ssc.textFileStream(tmp_path)  # a PathLike is a path too
    run(ssc, clock, 1)
    assert out == {1000: [("a", 3), ("b", 3)]}
    assert windowed == {1000: [("a", 3), ("b", 3)]}


# PySpark validates window and slide durations before any other argument (its _validate_window_param
# runs first, and the *Window methods built on reduceByKeyAndWindow reach it before touching their
# functions or partition counts): with a bad window and a bad function, the error is the window's.
BAD_WINDOW_FIRST = [
    ("reduceByKeyAndWindow", lambda s: s.reduceByKeyAndWindow(None, None, 0.1, 0.1), "windowDuration"),
    ("reduceByKeyAndWindow", lambda s: s.reduceByKeyAndWindow(None, 5, 2.0, 0.5, -1, 3), "slideDuration"),
    ("reduceByWindow", lambda s: s.reduceByWindow(None, None, 0.1, 1.0), "windowDuration"),
    ("reduceByWindow", lambda s: s.reduceByWindow("+", 7, 2.0, 1.5), "slideDuration"),
    ("countByWindow", lambda s: s.countByWindow(1.5, 1.0), "windowDuration"),
    ("countByValueAndWindow", lambda s: s.countByValueAndWindow(0.5, 1.0, 0), "windowDuration"),
    ("countByValueAndWindow", lambda s: s.countByValueAndWindow(2.0, 0.5, -3), "slideDuration"),
    ("groupByKeyAndWindow", lambda s: s.groupByKeyAndWindow(2.5, 1.0, 0), "windowDuration"),
    ("groupByKeyAndWindow", lambda s: s.groupByKeyAndWindow(2.0, 0.3, "x"), "slideDuration"),
    ("window", lambda s: s.window(0.1, 0.1), "windowDuration"),
    ("window", lambda s: s.window(2.0, 1.5), "slideDuration"),
]


@pytest.mark.parametrize(
    ("method", "build", "which"), BAD_WINDOW_FIRST, ids=lambda v: v if isinstance(v, str) else ""
)
def test_window_and_slide_are_validated_before_the_other_arguments(ssc, method, build, which):
    stream = ssc.queueStream([[("a", 1)]])
    with pytest.raises(ValueError, match=rf"{which} .*multiple of the parent dstream's slide") as info:
        build(stream)
    assert not isinstance(info.value, TypeError)


def test_union_checks_slide_durations_first(ssc):
    one = ssc.queueStream([[1]])
    with pytest.raises(ValueError, match="the two DStream should have same slide duration"):
        one.union(one.window(2.0, 2.0))
