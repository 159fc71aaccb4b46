"""Retention decisions, as pure functions: what may be deleted once a metadata checkpoint is durable.

Rules:

- Metadata checkpoints: keep the newest `keep_n` by (name_ms, seq), and always keep the newest valid
  one even if newer corrupt files crowd it out of the window (the reader falls back to it).
- RDD data checkpoint directories: the kept checkpoints may all be read on recovery (the reader falls
  back past corrupt ones), so nothing they reference is deleted. Per stream, only directories older
  than the oldest time any kept checkpoint references are deleted (Spark's rule); newer unreferenced
  ones may be an asynchronous checkpoint still being written, and a stream no kept checkpoint
  references keeps everything.
- Run directories (`rdd/<run id>/`, where a Context's `rdd.checkpoint()` writes): a run's files are
  kept while that Context runs (a live RDD may read them), as in Spark; the directory of any other run
  is deleted, since only one driver runs on a checkpoint directory at a time (the lease) and a
  restarted driver reads data checkpoints only.
- WAL: the clean threshold is the smallest `wal_needed_from_ms` among the kept checkpoints; if any kept
  checkpoint does not say what it needs, nothing is cleaned.

The I/O shell that lists and deletes lives in `checkpoint.metadata`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from checkpoint.errors import CheckpointValueError
from checkpoint.layout import CheckpointName

RddDirKey = tuple[str, int]
"""(stream id, batch_ms) of one RDD data checkpoint directory."""


@dataclass(frozen=True)
class CheckpointSummary:
    """What retention needs to know about one kept metadata checkpoint."""

    name: CheckpointName
    data_refs: frozenset[RddDirKey] = frozenset()
    wal_needed_from_ms: int | None = None


@dataclass(frozen=True)
class RetentionPlan:
    """What may be deleted now."""

    delete_metadata: list[CheckpointName] = field(default_factory=list)
    delete_rdd_dirs: list[RddDirKey] = field(default_factory=list)
    wal_clean_before_ms: int | None = None
    delete_run_dirs: list[str] = field(default_factory=list)


def metadata_to_keep(
    names: Iterable[CheckpointName], *, keep_n: int, newest_valid: CheckpointName | None
) -> list[CheckpointName]:
    """The names kept: the newest `keep_n`, plus `newest_valid`; newest first.

    Raises:
        CheckpointValueError: keep_n < 1.
    """
    if not isinstance(keep_n, int) or keep_n < 1:
        raise CheckpointValueError(f"keep_n must be an int >= 1, got {keep_n!r}")
    ordered = sorted(set(names), reverse=True)
    kept = ordered[:keep_n]
    if newest_valid is not None and newest_valid in ordered and newest_valid not in kept:
        kept.append(newest_valid)
    return kept


def metadata_to_delete(
    names: Iterable[CheckpointName], *, keep_n: int, newest_valid: CheckpointName | None
) -> list[CheckpointName]:
    """The names that may be deleted (oldest first); the complement of `metadata_to_keep`."""
    all_names = set(names)
    kept = set(metadata_to_keep(all_names, keep_n=keep_n, newest_valid=newest_valid))
    return sorted(all_names - kept)


def rdd_dirs_to_delete(existing: Iterable[RddDirKey], referenced: Iterable[RddDirKey]) -> list[RddDirKey]:
    """RDD checkpoint dirs older than the oldest reference of their stream and not referenced."""
    refs = set(referenced)
    oldest: dict[str, int] = {}
    for stream, batch_ms in refs:
        oldest[stream] = min(batch_ms, oldest.get(stream, batch_ms))
    return sorted(
        key for key in set(existing) if key not in refs and key[0] in oldest and key[1] < oldest[key[0]]
    )


def run_dirs_to_delete(existing_runs: Iterable[str], live_runs: Iterable[str]) -> list[str]:
    """The `rdd/<run id>` directories of Contexts that no longer run (every run but the live ones)."""
    return sorted(set(existing_runs) - set(live_runs))


def wal_clean_before_ms(needs: Iterable[int | None]) -> int | None:
    """The WAL clean threshold: the smallest need, or None if any need is unknown or there are none."""
    values = list(needs)
    if not values or any(v is None for v in values):
        return None
    return min(v for v in values if v is not None)


def plan_retention(
    summaries: Sequence[CheckpointSummary],
    all_names: Iterable[CheckpointName],
    existing_rdd_dirs: Iterable[RddDirKey],
    *,
    keep_n: int,
    newest_valid: CheckpointName | None,
    existing_run_dirs: Iterable[str] = (),
    live_runs: Iterable[str] = (),
) -> RetentionPlan:
    """Combine the four rules.

    Args:
        summaries: summaries of (at least) every checkpoint that will be kept. A kept name without a
            summary (unreadable right now) blocks RDD and WAL deletion this round, to be safe.
        all_names: every metadata checkpoint name present.
        existing_rdd_dirs: every RDD data checkpoint dir present.
        keep_n: how many metadata checkpoints to keep.
        newest_valid: the newest checkpoint known to be valid (typically the one just written).
        existing_run_dirs: the run ids that have an `rdd/<run id>` directory.
        live_runs: run ids of Contexts running now (their directories are kept).
    """
    names = set(all_names)
    kept = metadata_to_keep(names, keep_n=keep_n, newest_valid=newest_valid)
    by_name = {s.name: s for s in summaries}
    plan_meta = sorted(names - set(kept))
    runs = run_dirs_to_delete(existing_run_dirs, live_runs)
    if any(name not in by_name for name in kept):
        return RetentionPlan(plan_meta, [], None, runs)
    kept_summaries = [by_name[name] for name in kept]
    refs = [ref for s in kept_summaries for ref in s.data_refs]
    return RetentionPlan(
        plan_meta,
        rdd_dirs_to_delete(existing_rdd_dirs, refs),
        wal_clean_before_ms(s.wal_needed_from_ms for s in kept_summaries),
        runs,
    )
