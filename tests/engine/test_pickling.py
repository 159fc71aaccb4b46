"""dumps_records: plain data pickled without the memo, everything else through cloudpickle."""

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

from dstream.pickling import dumps_records


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
def test_plain_data_round_trips_without_the_memo(value: Any) -> None:
    data = dumps_records(value)
    assert pickle.loads(data) == value
    assert not {"MEMOIZE", "BINPUT", "LONG_BINPUT"} & opcodes(data)  # fast mode: no memo table


def test_instances_of_importable_classes_take_the_fast_path() -> None:
    records = [Point(i, -i) for i in range(5)]
    data = dumps_records(records)
    assert pickle.loads(data) == records
    assert "MEMOIZE" not in opcodes(data)


def test_a_cycle_falls_back_and_is_kept() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    back = pickle.loads(dumps_records(loop))
    assert back[0] == 1 and back[1] is back


def test_a_class_defined_in_a_function_travels_by_value() -> None:
    class Local:
        def __init__(self, v: int) -> None:
            self.v = v

    data = dumps_records([Local(3)])
    assert b"cloudpickle" in data  # the class definition is in the payload
    assert pickle.loads(data)[0].v == 3


def test_a_class_of_main_travels_by_value_not_by_a_reference_other_processes_lack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A script's class: plain pickle would write "__main__.Scripted", which resolves here but not
    # in a worker process running another __main__.
    scripted = type("Scripted", (), {"__module__": "__main__", "v": 7})
    monkeypatch.setattr(sys.modules["__main__"], "Scripted", scripted, raising=False)
    data = dumps_records([scripted()])
    assert b"cloudpickle" in data  # the class definition is in the payload
    assert pickle.loads(data)[0].v == 7


def test_what_nothing_can_pickle_raises_cloudpickles_error() -> None:
    with pytest.raises(TypeError, match="lock"):
        dumps_records([threading.Lock()])


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
