"""updateStateByKey's per-batch step against PySpark's cogroup-based definition, on every path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dstream import Context
from dstream.errors import JobFailedError
from dstream.streaming.state import state_reduce_func

pairs = st.lists(st.tuples(st.integers(0, 9), st.integers(-3, 3)), max_size=25)


def update(values: list[int], old: int | None) -> Any:
    """The new state records exactly what the step passed in; a zero total drops the key."""
    return None if sum(values) + (old or 0) == 0 else (tuple(values), old)


def reference(state: list[Any], batch: list[Any]) -> list[Any]:
    """PySpark: cogroup (keys in first-seen order, state first), then update(new values, first old)."""
    out = []
    for key in dict.fromkeys([k for k, _ in state] + [k for k, _ in batch]):
        old = next((v for k, v in state if k == key), None)
        new = update([v for k, v in batch if k == key], old)
        if new is not None:
            out.append((key, new))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=pairs, batch=pairs, parts=st.integers(1, 3), copartitioned=st.booleans())
def test_one_step_matches_pysparks_definition(
    sc: Context, state: list[Any], batch: list[Any], parts: int, copartitioned: bool
) -> None:
    """Keys twice in the state (an initial RDD) use their first value, once; dropped keys vanish."""
    last = sc.parallelize(state, 2)
    if copartitioned:
        last = last.partitionBy(parts)
    new = state_reduce_func(update, parts)(last, sc.parallelize(batch, 2))
    assert (b"StateUpdateRDD" in new.toDebugString()) == copartitioned
    got = new.collect()
    assert sorted(got, key=repr) == sorted(reference(state, batch), key=repr)


def test_state_keys_come_first_then_new_keys_in_batch_order(sc: Context) -> None:
    state, batch = [(5, 1), (3, 1), (5, 9)], [(7, 1), (3, 1), (9, 2), (7, 4)]
    last = sc.parallelize(state, 1).partitionBy(1)
    new = state_reduce_func(update, 1)(last, sc.parallelize(batch, 1))
    assert new.collect() == reference(state, batch)
    assert [k for k, _ in new.collect()] == [5, 3, 7, 9]


def test_a_batch_record_that_is_not_a_pair_is_named(sc: Context) -> None:
    last = sc.parallelize([(1, 1)], 1).partitionBy(1)
    keys_only = last.map(lambda kv: kv[0], preservesPartitioning=True)  # partitioned, so no shuffle
    new = state_reduce_func(update, 1)(last, keys_only)
    message = r"updateStateByKey expects a stream of \(key, value\) pairs.*: 1"
    with pytest.raises(JobFailedError, match=message):
        new.collect()
