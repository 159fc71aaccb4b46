"""The DStreamGraph: stable stream ids, cloudpickle round trip, per-batch file selection kept."""

from __future__ import annotations

import operator

import cloudpickle

from dstream.streaming.file_input import FileInputDStream
from dstream.streaming.state import StateDStream
from tests.streaming.conftest import collect, run


def build(ssc, directory):
    words = ssc.textFileStream(str(directory)).flatMap(str.split)
    counts = words.map(lambda w: (w, 1)).reduceByKey(operator.add)
    state = counts.updateStateByKey(lambda vs, s: sum(vs) + (s or 0))
    state.pprint()
    counts.window(2, 1).count().pprint()
    return state


def test_stream_ids_follow_registration_order(ssc, tmp_path):
    build(ssc, tmp_path)
    ids = [s._id for s in ssc.graph.streams]
    assert ids == list(range(len(ids)))
    kinds = [type(s).__name__ for s in ssc.graph.streams]
    assert kinds[0] == "FileInputDStream" and "StateDStream" in kinds


def test_graph_round_trips_through_cloudpickle_after_running(ssc, sc, clock, tmp_path):
    ssc.checkpoint(str(tmp_path / "ckpt"))
    state = build(ssc, tmp_path / "in")
    (tmp_path / "in").mkdir()
    extra = collect(ssc.queueStream([[1, 2]]).map(lambda x: x * 10))
    run(ssc, clock, 3)
    assert extra == {1000: [10, 20], 2000: [], 3000: []}
    assert state._generated  # live RDDs exist before pickling ...
    blob = cloudpickle.dumps(ssc.graph)
    graph = cloudpickle.loads(blob)
    assert [type(s).__name__ for s in graph.streams] == [type(s).__name__ for s in ssc.graph.streams]
    assert [s._id for s in graph.streams] == [s._id for s in ssc.graph.streams]
    assert graph.zero_time_ms == 0 and graph.batch_ms == 1000
    restored_state = next(s for s in graph.streams if isinstance(s, StateDStream))
    assert restored_state._generated == {} and restored_state._ssc is None  # ... and are transient
    assert restored_state._checkpoint_ms == 10_000
    files = next(s for s in graph.streams if isinstance(s, FileInputDStream))
    assert files.batch_time_to_files == {1000: [], 2000: [], 3000: []}
    # parent links point at the restored objects, and the user closures survive
    assert restored_state._parents[0] in graph.streams
    graph.set_context(ssc)
    assert all(s._ssc is ssc for s in graph.streams)
    mapped = next(
        s
        for s in graph.streams
        if type(s._parents[:1][0] if s._parents else None).__name__ == "QueueInputDStream"
    )
    assert sorted(mapped._func(1000, sc.parallelize([1, 2])).collect()) == [10, 20]
