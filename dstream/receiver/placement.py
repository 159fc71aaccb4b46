"""Which Dask worker a receiver runs on: a pure decision, so it is tested exhaustively.

Rules, in order (`choose_worker`):

1. No worker alive: none (the launcher waits, bounded, for one, e.g. a nanny's replacement).
2. The worker the receiver ran on last, if still alive: a receiver stays where its receiver WAL is
   open for writing (a second writer on another worker would interleave records), and where its
   source already reaches it.
3. `Receiver.preferredLocation()`: a worker address (``tcp://host:port``) or a host; among the alive
   workers that match it, the least loaded.
4. Otherwise the least loaded alive worker (fewest receivers placed on it), so two receivers on
   ``local-cluster[2]`` take one worker each and every worker keeps its task slot for tasks.

Ties break on the address, so a decision never depends on dict order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def host_of(address: str) -> str:
    """The host of a Dask address: ``tcp://127.0.0.1:4000`` -> ``127.0.0.1`` (a bare host is itself)."""
    rest = address.split("://", 1)[-1]
    if rest.startswith("["):  # an IPv6 literal: [::1]:4000
        return rest[1:].split("]", 1)[0]
    return rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest


def matches(worker: str, preferred: str) -> bool:
    """Whether `worker` is the preferred location: the same address, or a worker on the preferred host."""
    return worker == preferred or (host_of(worker) == host_of(preferred) and "://" not in preferred)


def choose_worker(
    alive: Sequence[str],
    preferred: str | None,
    previous: str | None,
    load: Mapping[str, int],
) -> str | None:
    """The worker to start a receiver on (rules in the module docstring).

    Args:
        alive: addresses of the workers alive now.
        preferred: the receiver's `preferredLocation()`, or None.
        previous: the worker it ran on last, or None.
        load: receivers already placed per worker (this one excluded).
    """
    if not alive:
        return None
    if previous is not None and previous in alive:
        return previous
    candidates = sorted(set(alive))
    if preferred:
        wanted = [w for w in candidates if matches(w, preferred)]
        candidates = wanted or candidates
    return min(candidates, key=lambda w: (load.get(w, 0), w))
