"""dstream.pickling: lists of text without the memo, everything else exactly as pickle.dumps."""

from __future__ import annotations

import pickle
import pickletools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dstream import pickling
from dstream.backends.block_manager import BlockRef, RDDBlockId, ShuffleBlockId
from dstream.backends.serialization import serialize_task
from dstream.pickling import dumps_records, holds_no_shared_mutable, is_flat_text
from dstream.rdd.tasks import StageTask, TaskInputs
from dstream.receiver.block_handler import BlockRecord, decode_block_record, encode_block_record

MEMO_OPCODES = {"MEMOIZE", "BINPUT", "LONG_BINPUT"}


def opcodes(data: bytes) -> set[str]:
    return {op.name for op, _, _ in pickletools.genops(data)}


class Text(str):
    """A str subclass: may carry attributes, so it keeps the memo."""


@given(st.lists(st.text()) | st.lists(st.binary()))
def test_lists_of_text_round_trip_without_the_memo(records: list[Any]) -> None:
    data = dumps_records(records)
    assert pickle.loads(data) == records
    assert not MEMO_OPCODES & opcodes(data)


plain_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner) | st.tuples(inner, inner) | st.dictionaries(st.text(), inner),
    max_leaves=30,
)


@given(st.lists(plain_data, min_size=1))
def test_any_other_list_is_pickled_exactly_as_pickle_does(records: list[Any]) -> None:
    if is_flat_text(records):
        return
    assert dumps_records(records) == pickle.dumps(records, 5)


@pytest.mark.parametrize(
    "records",
    [["a", b"b"], ["a", Text("b")], [("k", "v")], ["a", 1], ("a", "b")],
    ids=["str and bytes", "str subclass", "tuples", "str and int", "a tuple, not a list"],
)
def test_only_lists_of_exactly_str_or_exactly_bytes_are_flat_text(records: Any) -> None:
    assert not is_flat_text(records)
    assert is_flat_text(["a", "b"]) and is_flat_text([b"a"]) and is_flat_text([])


def test_text_past_the_size_bound_keeps_the_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the memo a string referenced n times is written n times: the cap bounds that growth."""
    shared = "x" * 1000
    monkeypatch.setattr(pickling, "FAST_BYTES_MAX", 10_100)
    assert pickle.loads(dumps_records([shared] * 10)) == [shared] * 10
    assert not MEMO_OPCODES & opcodes(dumps_records([shared] * 10))
    data = dumps_records([shared] * 11)
    assert data == pickle.dumps([shared] * 11, 5) and len(data) < 2 * len(shared)


def test_shared_mutable_objects_are_told_apart() -> None:
    inner = [1, 2]
    assert holds_no_shared_mutable({"producers": {"p1": [1, 5], "p2": [6, 9]}, "n": (1, "a")})
    assert holds_no_shared_mutable(None)
    assert not holds_no_shared_mutable({"a": inner, "b": inner})
    assert not holds_no_shared_mutable(((inner,), (inner,)))  # shared through tuples too
    loop: list[Any] = []
    loop.append(loop)
    assert not holds_no_shared_mutable(loop)
    assert not holds_no_shared_mutable({"a": bytearray(b"x")})  # other types keep the memo
    assert not holds_no_shared_mutable({"all": inner}, besides=(inner,))  # reaches what is beside it


def test_task_inputs_are_references_whatever_the_size_of_the_blocks() -> None:
    refs = TaskInputs(
        {(1, 0): BlockRef(RDDBlockId(1, 0), ("driver",))},
        {(3, 0): (BlockRef(ShuffleBlockId(3, 0, 0), ("driver",)),)},
    )
    task = StageTask(b"stage", 0, refs, "a test stage", ("driver",))
    serialized = serialize_task(task)
    assert serialized.buffers == () and serialized.nbytes < 1000  # ids and locations, no records
    back = pickle.loads(serialized.payload)
    assert back.inputs == task.inputs and back.preferred_locations == ("driver",)


def test_receiver_wal_block_records_keep_their_meaning_both_ways() -> None:
    lines = BlockRecord(1, "b-1", 1000, {"producers": {"p": [1, 3]}}, ["a", "b", "c"])
    data = encode_block_record(lines)
    assert decode_block_record(data) == lines and not MEMO_OPCODES & opcodes(data[4:])
    inner = [1]
    shared = BlockRecord(1, "b-2", 1000, {"x": inner, "y": inner}, ["a"])
    back = decode_block_record(encode_block_record(shared))
    assert back == shared and back.metadata is not None and back.metadata["x"] is back.metadata["y"]
    records = ["a", "b"]
    aliased = BlockRecord(1, "b-3", 1000, {"records": records}, records)
    back = decode_block_record(encode_block_record(aliased))
    assert back.metadata is not None and back.metadata["records"] is back.records
