"""Which executors a task prefers to run on: the decision, pure, apart from the scheduler that asks it.

A task reads some inputs where they already are: a persisted or in-memory partition's block, a block
RDD's received block, the buckets of a shuffle. Each of those is a *candidate group*, the executors
holding that input, and the DAG scheduler lists the groups of one task as it walks the task's
lineage from the RDD it computes towards its sources, nearest first: for each RDD, the locations its
node declares (`Node.preferred_locations`: a block RDD's received block, Spark's ``makeRDD``
locations), then its stored block's holders; for a shuffle it reads, the executors holding a large
share of its bucket (`MapOutputTracker.preferred_locations`, by `largest_holders`). A checkpointed
RDD's node reads files and declares nothing.

The rule, after Spark's ``DAGScheduler.getPreferredLocs`` (the nearest RDD with preferences wins):

1. The first group with at least one executor not known lost is chosen; nothing from later groups is
   added, so a block RDD task prefers the receiving worker and its replica over wherever the tiny
   reference to that block happens to be held.
2. Of that group, the executors not known lost are kept, in their order, without duplicates.
3. When every candidate is lost (or there is none) the task prefers nothing and runs anywhere.

A reduce task reads its bucket from every map task, so it prefers each executor holding at least
`REDUCER_PREF_FRACTION` of the bucket's bytes, largest first (Spark's ``REDUCER_PREF_LOCS_FRACTION``):
when the map outputs are spread evenly every holder qualifies and the task is free to run on any of
them, instead of all reduce tasks queueing on the one executor that happens to hold a few more bytes.

The backend applies its own, fresher view on top (the Dask backend passes only workers its
membership view knows alive) and treats the answer as a preference, never a requirement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

Executors = tuple[str, ...]

REDUCER_PREF_FRACTION = 0.2


def preferred_locations(groups: Iterable[Sequence[str]], is_lost: Callable[[str], bool]) -> Executors:
    """The executors a task prefers: the live members of the first group that has one.

    Args:
        groups: candidate groups, nearest input first; each lists the executors holding one input.
        is_lost: whether the driver knows an executor is gone.

    Returns:
        Distinct executor ids, in the group's order; empty when no candidate is alive.
    """
    for group in groups:
        live = tuple(dict.fromkeys(e for e in group if not is_lost(e)))
        if live:
            return live
    return ()


def largest_holders(sizes: Mapping[str, int], fraction: float = REDUCER_PREF_FRACTION) -> Executors:
    """The executors holding at least `fraction` of the total bytes, most bytes first (ties by id).

    Args:
        sizes: bytes held per executor (of one reduce task's bucket).
        fraction: the share an executor must hold, in (0, 1].

    Returns:
        Empty when nothing is held (every size is 0, or there is no executor).
    """
    total = sum(max(0, n) for n in sizes.values())
    if total <= 0:
        return ()
    ranked = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(e for e, n in ranked if n > 0 and n >= fraction * total)
