"""Retention decisions (pure), checked against their stated invariants with Hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkpoint.errors import CheckpointValueError
from checkpoint.layout import CheckpointName
from checkpoint.retention import (
    CheckpointSummary,
    metadata_to_delete,
    metadata_to_keep,
    plan_retention,
    rdd_dirs_to_delete,
    run_dirs_to_delete,
    wal_clean_before_ms,
)

names_st = st.sets(st.builds(CheckpointName, st.integers(0, 50), st.integers(0, 50)), max_size=30)
rdd_keys_st = st.sets(st.tuples(st.sampled_from(["0", "1", "2"]), st.integers(0, 30)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(names=names_st, keep_n=st.integers(1, 12), data=st.data())
def test_metadata_keeps_newest_n_and_newest_valid(
    names: set[CheckpointName], keep_n: int, data: st.DataObject
) -> None:
    newest_valid = data.draw(st.sampled_from(sorted(names))) if names else None
    kept = metadata_to_keep(names, keep_n=keep_n, newest_valid=newest_valid)
    deleted = metadata_to_delete(names, keep_n=keep_n, newest_valid=newest_valid)
    assert set(kept) | set(deleted) == names and not set(kept) & set(deleted)
    newest_first = sorted(names, reverse=True)
    assert set(newest_first[:keep_n]) <= set(kept)
    if newest_valid is not None:
        assert newest_valid in kept
    assert len(kept) <= keep_n + 1
    if deleted:  # nothing deleted is newer than something kept by the window
        assert max(deleted) < min(newest_first[:keep_n])


def test_keep_n_must_be_positive() -> None:
    with pytest.raises(CheckpointValueError, match="keep_n must be an int >= 1, got 0"):
        metadata_to_keep([], keep_n=0, newest_valid=None)


@settings(max_examples=200, deadline=None)
@given(existing=rdd_keys_st, data=st.data())
def test_rdd_dirs_never_delete_referenced_or_in_progress(
    existing: set[tuple[str, int]], data: st.DataObject
) -> None:
    referenced = data.draw(st.sets(st.sampled_from(sorted(existing)))) if existing else set()
    deleted = set(rdd_dirs_to_delete(existing, referenced))
    assert deleted <= existing and not deleted & referenced
    for stream, batch in existing:
        stream_refs = [t for s, t in referenced if s == stream]
        # Reference implementation of the rule, written plainly.
        expected = bool(stream_refs) and batch < min(stream_refs) and (stream, batch) not in referenced
        assert ((stream, batch) in deleted) == expected


def test_rdd_dirs_example() -> None:
    existing = [("0", 10), ("0", 20), ("0", 30), ("0", 40), ("1", 5)]
    assert rdd_dirs_to_delete(existing, [("0", 30)]) == [("0", 10), ("0", 20)]


@settings(max_examples=100, deadline=None)
@given(needs=st.lists(st.one_of(st.none(), st.integers(0, 10**6)), max_size=10))
def test_wal_threshold_is_min_need_or_none(needs: list[int | None]) -> None:
    got = wal_clean_before_ms(needs)
    if not needs or None in needs:
        assert got is None
    else:
        assert got == min(n for n in needs if n is not None)
        assert all(got <= n for n in needs if n is not None)


@settings(max_examples=150, deadline=None)
@given(names=names_st.filter(bool), keep_n=st.integers(1, 6), existing=rdd_keys_st, data=st.data())
def test_plan_protects_everything_kept_checkpoints_need(
    names: set[CheckpointName], keep_n: int, existing: set[tuple[str, int]], data: st.DataObject
) -> None:
    summaries = [
        CheckpointSummary(
            n,
            frozenset(data.draw(st.sets(st.sampled_from(sorted(existing)), max_size=3)) if existing else ()),
            data.draw(st.integers(0, 100)),
        )
        for n in names
    ]
    newest = max(names)
    plan = plan_retention(summaries, names, existing, keep_n=keep_n, newest_valid=newest)
    kept = set(names) - set(plan.delete_metadata)
    kept_refs = {r for s in summaries if s.name in kept for r in s.data_refs}
    assert not set(plan.delete_rdd_dirs) & kept_refs
    assert newest in kept
    assert plan.wal_clean_before_ms == min(s.wal_needed_from_ms for s in summaries if s.name in kept)


def test_plan_with_unknown_kept_checkpoint_deletes_no_data() -> None:
    a, b = CheckpointName(1, 0), CheckpointName(2, 1)
    plan = plan_retention(
        [CheckpointSummary(b, frozenset({("0", 20)}), 5)], [a, b], [("0", 10)], keep_n=2, newest_valid=b
    )
    assert plan.delete_metadata == [] and plan.delete_rdd_dirs == [] and plan.wal_clean_before_ms is None


@settings(max_examples=100, deadline=None)
@given(
    existing=st.sets(st.sampled_from("abcdef"), max_size=6),
    live=st.sets(st.sampled_from("abcdef"), max_size=3),
)
def test_run_dirs_of_contexts_that_no_longer_run_are_deleted(existing: set[str], live: set[str]) -> None:
    deleted = run_dirs_to_delete(existing, live)
    assert set(deleted) == existing - live and deleted == sorted(deleted)


def test_plan_deletes_dead_runs_even_while_a_kept_checkpoint_is_unreadable() -> None:
    name = CheckpointName(5, 0)
    plan = plan_retention(
        [], [name], [], keep_n=1, newest_valid=name, existing_run_dirs=["old", "me"], live_runs=["me"]
    )
    assert plan.delete_run_dirs == ["old"] and plan.delete_rdd_dirs == []
