"""Broadcast variables across Dask workers: the driver publishes their bytes on the scheduler.

`Context.broadcast` publishes a value's pickled bytes in the broadcast registry of the driver's
executor environment (dstream.broadcast). With the Dask backend that registry is a
`SchedulerBroadcastRegistry`, which also stores the bytes in the scheduler's metadata under
``["dstream", <plugin name>, "broadcasts", <id>]``; each worker's registry, on a miss, fetches them
from there once (`scheduler_fetcher`) and keeps them like a local entry. `destroy` removes them from
the scheduler; stopping the backend removes the driver's whole namespace (`forget_all`). A broadcast
whose driver object was collected stays on the scheduler until then (its id is never reused by the
driver).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from distributed.utils import sync

from dstream.broadcast import BroadcastRegistry


def _key(namespace: str, bid: int | None = None) -> list[str]:
    key = ["dstream", namespace]
    return key if bid is None else [*key, "broadcasts", str(bid)]


class SchedulerBroadcastRegistry(BroadcastRegistry):
    """The driver's broadcast registry, mirrored to the scheduler for the workers.

    Args:
        client: the driver's Dask client.
        namespace: the backend's plugin name (keeps two drivers on one scheduler apart).
    """

    def __init__(self, client: Any, namespace: str) -> None:
        super().__init__()
        self._client = client
        self._namespace = namespace

    def publish(self, bid: int, data: bytes) -> None:
        super().publish(bid, data)
        self._client.set_metadata(_key(self._namespace, bid), data)

    def destroy(self, bid: int) -> None:
        super().destroy(bid)
        self._client.set_metadata(_key(self._namespace, bid), None)

    def forget_all(self) -> None:
        """Drop every broadcast of this driver from the scheduler (the backend is stopping)."""
        self._client.set_metadata(_key(self._namespace), None)


def scheduler_fetcher(worker: Any, namespace: str) -> Callable[[int], bytes | None]:
    """A worker's fetcher: the bytes of broadcast `bid` from the scheduler's metadata, or None."""

    def fetch(bid: int) -> bytes | None:
        data = sync(worker.loop, worker.scheduler.get_metadata, keys=_key(namespace, bid), default=None)
        return data if isinstance(data, bytes) else None

    return fetch
