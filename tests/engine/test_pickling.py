"""dumps_records: plain data without the memo, shared data with it, by-value objects through cloudpickle."""

from __future__ import annotations

import pickle
import pickletools
import sys
import threading
from dataclasses import dataclass
from typing import Any

import cloudpickle
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dstream.pickling import SAMPLE_RECORDS, dumps_records
from dstream.rdd.tasks import TaskResult

MEMO_OPCODES = {"MEMOIZE", "BINPUT", "LONG_BINPUT"}


def opcodes(data: bytes) -> set[str]:
    return {op.name for op, _, _ in pickletools.genops(data)}


@dataclass(frozen=True)
class Point:  # importable by every process: pickled by reference
    x: int
    y: int


plain_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner) | st.tuples(inner, inner) | st.dictionaries(st.text(), inner),
    max_leaves=30,
)


@given(plain_data)
def test_any_plain_data_round_trips(value: Any) -> None:
    assert pickle.loads(dumps_records(value)) == value
    assert pickle.loads(dumps_records(value, by_reference=True)) == value


def test_distinct_lines_take_the_fast_path_without_the_memo() -> None:
    lines = [f"line {i} " + "word " * 9 for i in range(5000)]
    data = dumps_records(lines)
    assert pickle.loads(data) == lines
    assert not MEMO_OPCODES & opcodes(data)
    assert len(data) <= len(pickle.dumps(lines, 5))


def test_records_that_share_objects_keep_the_memo_and_the_sharing() -> None:
    """An inverted index's (word, document) pairs: without the memo each pair would carry its document."""
    docs = [[f"w{(d * 7 + i) % 50}" for i in range(200)] for d in range(20)]
    pairs = [(word, doc) for doc in docs for word in doc]
    data = dumps_records(pairs)
    assert len(data) <= 1.1 * len(pickle.dumps(pairs, 5))
    back = pickle.loads(data)
    assert back == pairs
    assert back[0][1] is back[1][1]  # one document object, as before pickling


def test_sharing_beyond_the_sample_cannot_blow_up() -> None:
    """A DAG of shared lists far down the records: 2**40 leaves without the memo; the cap catches it."""
    dag: list[Any] = ["leaf"]
    for _ in range(40):
        dag = [dag, dag]
    records: list[Any] = [f"r{i}" for i in range(4 * SAMPLE_RECORDS)] + [dag]
    data = dumps_records(records)
    assert len(data) < 2 * len(pickle.dumps(records, 5))
    back = pickle.loads(data)
    assert back[-1][0] is back[-1][1]


def test_a_result_whose_value_and_cached_block_hold_the_same_records_is_written_once() -> None:
    records = [(f"key {i}", [i] * 20) for i in range(1000)]
    result = TaskResult(list(records), {(7, 0): records})
    data = dumps_records(result)
    assert len(data) < 1.2 * len(pickle.dumps(records, 5))
    back = pickle.loads(data)
    assert back.value == records and back.value[5] is back.new_blocks[(7, 0)][5]


def test_a_cycle_falls_back_and_is_kept() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    back = pickle.loads(dumps_records(loop))
    assert back[0] == 1 and back[1] is back


def test_instances_of_importable_classes_go_by_reference() -> None:
    records = [Point(i, -i) for i in range(500)]
    data = dumps_records(records)
    assert pickle.loads(data) == records
    assert b"cloudpickle" not in data


def test_a_class_defined_in_a_function_travels_by_value() -> None:
    class Local:
        def __init__(self, v: int) -> None:
            self.v = v

    data = dumps_records([Local(3)])
    assert b"cloudpickle" in data  # the class definition is in the payload
    assert pickle.loads(data)[0].v == 3


def test_a_lambda_inside_a_record_is_pickled_by_value_in_both_modes() -> None:
    for data in (dumps_records([("k", lambda: 42)]), dumps_records([("k", lambda: 42)], by_reference=True)):
        assert pickle.loads(data)[0][1]() == 42


def test_a_class_of_main_travels_by_value_in_transport_mode_and_by_reference_when_durable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A script's class: plain pickle would write "__main__.Scripted", which resolves here but not
    # in a worker process running another __main__; a restarted driver, though, defines it again.
    scripted = type("Scripted", (), {"__module__": "__main__", "v": 7})
    monkeypatch.setattr(sys.modules["__main__"], "Scripted", scripted, raising=False)
    transport = dumps_records([scripted()])
    assert b"cloudpickle" in transport
    assert pickle.loads(transport)[0].v == 7
    durable = dumps_records([scripted()], by_reference=True)
    assert b"cloudpickle" not in durable
    assert type(pickle.loads(durable)[0]) is scripted


def test_a_module_registered_by_value_with_cloudpickle_is_honoured() -> None:
    module = sys.modules[__name__]
    assert b"cloudpickle" not in dumps_records([Point(1, 2)])
    cloudpickle.register_pickle_by_value(module)
    try:
        data = dumps_records([Point(1, 2)])
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    assert b"cloudpickle" in data
    assert pickle.loads(data)[0].x == 1


def test_what_nothing_can_pickle_raises_cloudpickles_error_alone() -> None:
    with pytest.raises(TypeError, match="lock") as caught:
        dumps_records([threading.Lock()])
    assert caught.value.__context__ is None  # not chained to the fast path's own failure
