"""Window operations: emission times, contents, draining after input ends, PySpark's incremental path."""

from __future__ import annotations

import operator
from typing import Any

import pytest

from dstream.errors import DStreamValueError
from tests.streaming.conftest import collect, run
from tests.streaming.reference import group_by_key, reduce_by_key, window_contents, window_times

NUMS = [[1, 2], [3], [4, 5, 6], [7]]
PAIRS = [[("a", 1), ("b", 2)], [("a", 3)], [("c", 4), ("b", 5)], [("a", 6)]]
TICKS = 9  # 4 batches of input, then the windows drain


def by_repr(items: list[Any]) -> list[Any]:
    return sorted(items, key=repr)


@pytest.mark.parametrize(("window_s", "slide_s"), [(3, 1), (2, 2), (4, 2), (1, 1), (3, 3)])
def test_window_contents_and_emission_times(ssc, clock, window_s, slide_s):
    out = collect(ssc.queueStream(NUMS).window(window_s, slide_s))
    run(ssc, clock, TICKS)
    expected = {
        t: by_repr(window_contents(NUMS, t, window_s * 1000, 1000))
        for t in window_times(TICKS, 1000, slide_s * 1000)
    }
    assert out == expected


def test_window_without_slide_uses_the_batch_duration(ssc, clock):
    out = collect(ssc.queueStream(NUMS).window(2))
    run(ssc, clock, 5)
    assert out == {t: by_repr(window_contents(NUMS, t, 2000, 1000)) for t in range(1000, 6000, 1000)}


@pytest.mark.parametrize(
    "build",
    [
        lambda s: s.window(1.5),
        lambda s: s.window(2, 1.5),
        lambda s: s.countByWindow(2.5, 1),
        lambda s: s.reduceByWindow(operator.add, None, 3, 0.5),
        lambda s: s.map(lambda x: (x, 1)).reduceByKeyAndWindow(operator.add, None, 2.2),
        lambda s: s.map(lambda x: (x, 1)).groupByKeyAndWindow(3, 1.7),
        lambda s: s.countByValueAndWindow(0.3, 1),
    ],
)
def test_window_or_slide_not_a_multiple_of_the_batch_raises(ssc, build):
    with pytest.raises(DStreamValueError, match=r"multiple of the parent dstream's slide") as info:
        build(ssc.queueStream(NUMS))
    assert isinstance(info.value, ValueError)


def test_window_of_a_window_must_be_a_multiple_of_its_slide(ssc):
    windowed = ssc.queueStream(NUMS).window(4, 2)
    with pytest.raises(ValueError, match=r"3 s must be a multiple.*\(2000 ms\)"):
        windowed.window(3)


def test_reduce_by_key_and_window_without_inverse(ssc, clock):
    out = collect(ssc.queueStream(PAIRS).reduceByKeyAndWindow(operator.add, None, 3, 1))
    run(ssc, clock, TICKS)
    expected = {
        t: by_repr(list(reduce_by_key(window_contents(PAIRS, t, 3000, 1000), operator.add).items()))
        for t in window_times(TICKS, 1000, 1000)
    }
    assert out == expected


def incremental_reference(
    batches: list[list[Any]], window_ms: int, slide_ms: int, ticks: int, keep: Any = None
) -> dict[int, list[Any]]:
    """PySpark's incremental reduceByKeyAndWindow(add, sub): keys stay at 0 unless filtered out."""
    out: dict[int, list[Any]] = {}
    prev: dict[Any, Any] | None = None
    for t in window_times(ticks, 1000, slide_ms):
        window_sum = reduce_by_key(window_contents(batches, t, window_ms, 1000), operator.add)
        if prev is not None and window_ms >= 5 * slide_ms:
            cur = {k: window_sum.get(k, 0) for k in set(prev) | set(window_sum)}
        else:
            cur = window_sum
        if keep is not None:
            cur = {k: v for k, v in cur.items() if keep((k, v))}
        prev = cur
        out[t] = by_repr(list(cur.items()))
    return out


@pytest.mark.parametrize(("window_s", "slide_s"), [(5, 1), (3, 1), (6, 1), (4, 2), (10, 2)])
def test_reduce_by_key_and_window_with_inverse(ssc, clock, tmp_path, window_s, slide_s):
    ssc.checkpoint(str(tmp_path / "ckpt"))
    stream = ssc.queueStream(PAIRS)
    out = collect(stream.reduceByKeyAndWindow(operator.add, operator.sub, window_s, slide_s))
    ticks = len(PAIRS) + window_s + 2  # long enough for the last window to have drained
    run(ssc, clock, ticks)
    assert out == incremental_reference(PAIRS, window_s * 1000, slide_s * 1000, ticks)
    if window_s >= 5 * slide_s:
        # after the input ended, every key seen stays with the neutral value
        assert out[max(out)] == [("a", 0), ("b", 0), ("c", 0)]


def test_reduce_by_key_and_window_filter_func_drops_keys(ssc, clock, tmp_path):
    ssc.checkpoint(str(tmp_path / "ckpt"))
    keep = lambda kv: kv[1] != 0  # noqa: E731
    out = collect(ssc.queueStream(PAIRS).reduceByKeyAndWindow(operator.add, operator.sub, 5, 1, 2, keep))
    run(ssc, clock, TICKS)
    assert out == incremental_reference(PAIRS, 5000, 1000, TICKS, keep)


def test_count_by_window_incremental_drains_to_zero(ssc, clock, tmp_path):
    ssc.checkpoint(str(tmp_path / "ckpt"))
    out = collect(ssc.queueStream(NUMS).countByWindow(5, 1))
    run(ssc, clock, TICKS)
    counts = {t: len(window_contents(NUMS, t, 5000, 1000)) for t in window_times(TICKS, 1000, 1000)}
    assert out == {t: [c] for t, c in counts.items()}
    assert out[TICKS * 1000] == [0]


def test_count_by_window_short_window_emits_nothing_when_drained(ssc, clock, tmp_path):
    ssc.checkpoint(str(tmp_path / "ckpt"))
    out = collect(ssc.queueStream(NUMS).countByWindow(2, 1))
    run(ssc, clock, TICKS)
    expected = {}
    for t in window_times(TICKS, 1000, 1000):
        n = len(window_contents(NUMS, t, 2000, 1000))
        expected[t] = [n] if n else []
    assert out == expected


@pytest.mark.parametrize("inverse", [operator.sub, None])
def test_reduce_by_window(ssc, clock, tmp_path, inverse):
    ssc.checkpoint(str(tmp_path / "ckpt"))
    out = collect(ssc.queueStream(NUMS).reduceByWindow(operator.add, inverse, 2, 1))
    run(ssc, clock, 6)
    expected = {}
    for t in window_times(6, 1000, 1000):
        content = window_contents(NUMS, t, 2000, 1000)
        expected[t] = [sum(content)] if content else []
    assert out == expected


def test_count_by_value_and_window_keeps_positive_counts(ssc, clock, tmp_path):
    ssc.checkpoint(str(tmp_path / "ckpt"))
    data = [["x", "y", "x"], ["y"], [], ["z"]]
    out = collect(ssc.queueStream(data).countByValueAndWindow(5, 1))
    run(ssc, clock, TICKS)
    expected = {}
    for t in window_times(TICKS, 1000, 1000):
        counts = reduce_by_key([(w, 1) for w in window_contents(data, t, 5000, 1000)], operator.add)
        expected[t] = by_repr(list(counts.items()))
    assert out == expected


@pytest.mark.parametrize(("window_s", "slide_s"), [(5, 1), (2, 1)])
def test_group_by_key_and_window(ssc, clock, tmp_path, window_s, slide_s):
    ssc.checkpoint(str(tmp_path / "ckpt"))
    out = collect(ssc.queueStream(PAIRS).groupByKeyAndWindow(window_s, slide_s).mapValues(sorted))
    run(ssc, clock, TICKS)
    seen: set[str] = set()
    expected = {}
    for t in window_times(TICKS, 1000, slide_s * 1000):
        groups = group_by_key(window_contents(PAIRS, t, window_s * 1000, 1000))
        if window_s >= 5 * slide_s and t > slide_s * 1000:
            # incremental path: keys seen earlier stay, with an empty group once drained
            groups = {k: groups.get(k, []) for k in seen | set(groups)}
        seen |= set(groups)
        expected[t] = by_repr([(k, sorted(v)) for k, v in groups.items()])
    assert out == expected
