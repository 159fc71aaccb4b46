"""The streaming guide's lazily created broadcast and accumulator singletons, as PySpark users write them.

Broadcasts and accumulators cannot be recovered from a checkpoint, so the guide creates them lazily
in singletons that a restarted driver re-creates on its first batch; here a restart is a new
Context with the singletons cleared, as a new process would have them.
"""

from __future__ import annotations

import operator
from typing import Any

from dstream.clock import ManualClock
from dstream.streaming import StreamingContext
from tests.streaming.conftest import master_conf, run
from tests.support.contexts import engine_context, streaming_context

_singletons: dict[str, Any] = {}


def getWordExcludeList(sparkContext: Any) -> Any:
    if "wordExcludeList" not in _singletons:
        _singletons["wordExcludeList"] = sparkContext.broadcast(["a", "b", "c"])
    return _singletons["wordExcludeList"]


def getDroppedWordsCounter(sparkContext: Any) -> Any:
    if "droppedWordsCounter" not in _singletons:
        _singletons["droppedWordsCounter"] = sparkContext.accumulator(0)
    return _singletons["droppedWordsCounter"]


def build(ssc: StreamingContext, lines: list[list[str]], printed: list[str]) -> None:
    words = ssc.queueStream(lines).flatMap(lambda line: line.split(" "))
    wordCounts = words.map(lambda x: (x, 1)).reduceByKey(operator.add)

    def echo(time: Any, rdd: Any) -> None:
        excludeList = getWordExcludeList(rdd.context)
        droppedWordsCounter = getDroppedWordsCounter(rdd.context)

        def filterFunc(wordCount: tuple[str, int]) -> bool:
            if wordCount[0] in excludeList.value:
                droppedWordsCounter.add(wordCount[1])
                return False
            return True

        kept = sorted(rdd.filter(filterFunc).collect())
        printed.append(f"{kept} dropped so far {droppedWordsCounter.value}")

    wordCounts.foreachRDD(echo)


def test_lazily_created_broadcast_and_accumulator_in_foreach_rdd(master: str) -> None:
    _singletons.clear()
    printed: list[str] = []
    lines = [["a x b", "x y"], ["c c z"], ["q"]]
    with engine_context(master_conf(master), master) as sc, streaming_context(sc, ManualClock(0)) as ssc:
        build(ssc, lines, printed)
        run(ssc, ssc.clock, len(lines))  # type: ignore[arg-type]
    assert printed == [
        "[('x', 2), ('y', 1)] dropped so far 2",
        "[('z', 1)] dropped so far 4",
        "[('q', 1)] dropped so far 4",
    ]


def test_a_restarted_driver_recreates_the_singletons(master: str) -> None:
    _singletons.clear()
    printed: list[str] = []
    with engine_context(master_conf(master), master) as sc, streaming_context(sc, ManualClock(0)) as ssc:
        build(ssc, [["a b x"]], printed)
        run(ssc, ssc.clock, 1)  # type: ignore[arg-type]
    stale = _singletons["wordExcludeList"]
    # A new driver process starts with no singletons: it builds new ones on its own Context.
    _singletons.clear()
    with engine_context(master_conf(master), master) as sc, streaming_context(sc, ManualClock(0)) as ssc:
        build(ssc, [["c y"]], printed)
        run(ssc, ssc.clock, 1)  # type: ignore[arg-type]
    assert printed == ["[('x', 1)] dropped so far 2", "[('y', 1)] dropped so far 1"]
    assert _singletons["wordExcludeList"].id != stale.id
