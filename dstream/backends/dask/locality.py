"""Which workers each task of a stage is submitted with: the decision, pure, apart from the submission.

A task names the executors it prefers (`preferred_locations`, worker addresses found by the DAG
scheduler; dstream.rdd.locality). The Dask backend submits each task with those of them its membership
view knows alive as Dask worker restrictions, *loose* ones (``allow_other_workers=True``): the scheduler
runs the task there when it can, and anywhere else when that worker is gone or busy (a loose restriction
can be stolen by an idle worker), so a preference never blocks a task. Addresses that are no live worker
("driver", a worker that died since the scheduler looked) are dropped here, and a task left with none is
submitted without a restriction.

A preference must not cost more than it saves: when most of a stage prefers one worker (every block
of a single receiver is on its worker), restricting all of them there would leave the other workers
idle until Dask's work stealing moves tasks over, which takes seconds (measured: 2 to 4 s on
`local-cluster[2]` for tasks queued behind a busy worker). So each worker takes at most its fair share
of the round's restricted tasks, ``ceil(tasks / live workers)`` (Spark's locality wait solves the same
problem with a timer); a task whose preferred workers have all had their share is submitted without a
restriction, and Dask puts it on the least busy worker, where it fetches its input.

`client.map` takes one restriction for all its tasks, so the stage is split into one submission per
distinct set of workers (`submission_groups`): on N workers that is at most a handful, not one per task.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

Workers = tuple[str, ...]


def task_workers(preferred: Sequence[str], alive: Collection[str]) -> Workers:
    """The preferred addresses that are live workers, in order, without duplicates."""
    return tuple(dict.fromkeys(a for a in preferred if a in alive))


def submission_groups(
    todo: Sequence[int], preferred: Sequence[Sequence[str]], alive: Collection[str]
) -> dict[Workers, list[int]]:
    """The tasks of `todo` grouped by the workers they are submitted with.

    Args:
        todo: indices of the tasks to submit this round.
        preferred: every task's preferred addresses, by task index.
        alive: the workers alive now.

    Returns:
        Restriction -> task indices, in `todo`'s order; the empty restriction means "anywhere". Every
        index of `todo` is in exactly one group; groups appear in the order of their first task. A task
        is restricted to its live preferred workers that have not had their fair share yet, and counts
        against the least loaded of them; a worker's share is ``ceil(len(todo) / len(alive))``.
    """
    share = -(-len(todo) // max(1, len(alive)))
    load: dict[str, int] = {}
    groups: dict[Workers, list[int]] = {}
    for i in todo:
        workers = tuple(w for w in task_workers(preferred[i], alive) if load.get(w, 0) < share)
        if workers:
            charged = min(workers, key=lambda w: load.get(w, 0))
            load[charged] = load.get(charged, 0) + 1
        groups.setdefault(workers, []).append(i)
    return groups
