"""A prototype of the block-manager contract on Dask distributed: a worker plugin and its clients.

The Dask backend (`local-cluster[N]`, `dask://`) keeps blocks on the workers that made them; Dask's
own data (futures, scatter) is not used for blocks, because the engine must decide what a lost block
means (recompute a map task, read the WAL), and Dask would silently recompute or forget it. This
module holds the three pieces, and proves the contract (tests/backends/test_block_manager_contract.py
runs the same suite on it as on the local backend, on a real two-process `LocalCluster`):

- `BlockManagerPlugin`: a `distributed.WorkerPlugin` (name `PLUGIN_NAME`). Registered once with
  `client.register_plugin(BlockManagerPlugin())`, it gives every worker, present and future, a
  `MemoryStore` of its blocks (dstream.backends.local_blocks: memory budget, spill) and an RPC
  handler `dstream_blocks` through which the driver and other workers put and fetch blocks.
- `WorkerBlockManager`: the `BlockManager` that tasks on a worker use (the Dask backend builds the
  worker's `ExecutorEnv` with `ExecutorEnv(worker.address, worker_block_manager(worker))`). `put` keeps
  the block on this worker (a second copy on a peer worker for replication 2); `get` serves the local
  copy as is, else fetches it from the holders named in the reference (`get(block_id, locations)`).
  Its `executor_id` is the worker's address, which is what locations and `MapStatus` carry.
- `DaskBlockManagerClient`: the driver's `BlockManager` (the Dask backend's `block_manager` property). It
  puts and gets a block by calling the `dstream_blocks` handler of its worker directly, so a block's bytes
  cross the wire once (a `Client.run` goes through the scheduler, which received, decoded and sent them
  again: the driver's event loop used 0.10 of a core for 300,000 lines a second that way, 0.06 now); `put`
  places a block on a worker (round robin, or the one given to `put_on`, or the first live one of
  `put_near`'s), `get` fetches it by value; `locations`/`remove`/`remove_rdd`/`remove_shuffle`/`block_ids`
  ask every worker with `Client.run`; `fetch_counts` says how many blocks and bytes each worker's tasks
  fetched from other workers (what task locality saves). A worker that died is simply absent: its blocks
  answer `Lost`, never an exception. `lose_executor(address)` drops a worker's blocks (tests, chaos).
  Which workers are alive comes from a `WorkerView` (the backend's, dstream.backends.dask.membership, kept
  by scheduler events: no round trip per call); without one, the scheduler is asked before every call.
  Every call is bounded (`RPC_TIMEOUT_S`), so even a worker that died a moment ago costs one bounded wait,
  never Dask's connect retries per block.

Everything crossing a process is pickled here (protocol 5): block ids, levels and values travel as
bytes, so Dask's message serialization never sees user objects; a value's bytes travel as a frame of
their own (`_as_frame`), not copied into the message.

The handler's messages, version 1 of `PROTOCOL_VERSION`: ``action="put"`` with ``block``, ``value``,
``level`` (pickled) and ``size_records`` (the records the block counts against the worker's memory
budget), answered True; ``action="get"`` with ``block``, answered with the pickled value, or None when
the worker does not hold it.

`PROTOCOL_VERSION` versions everything a driver and its Dask workers say to each other: these
messages, the receivers' (dstream.receiver.worker_host), the tasks' serialized form
(dstream.backends.serialization); bump it with any change to one of them. Both sides must run the same
version: a worker refuses the executor plugin of a driver of another version, so that the driver's
Context fails at once with both versions named (dstream.backends.dask.worker_plugin), instead of
blocks and tasks misread or failing one by one. Workers of an embedded cluster run the driver's own
installation; the check is for ``dask://``, whose workers were started by someone else.

The Dask backend (dstream.backends.dask) plugs this in: it registers the plugin before submitting
tasks, runs each task inside its worker's `ExecutorEnv(worker.address, worker_block_manager(worker))`,
uses `DaskBlockManagerClient(client, view=<its membership view>)` as its `block_manager`, and reports
each worker that leaves to `DAGScheduler.executor_lost(address)`, so the map-output tracker and the
block-location table forget what it held.
"""

from __future__ import annotations

import itertools
import pickle
import threading
from collections.abc import Callable
from typing import Any, Protocol

from distributed import Client, Worker, WorkerPlugin
from distributed.protocol.serialize import Serialize
from distributed.utils import sync

from dstream.backends.block_manager import (
    MEMORY_ONLY,
    BlockId,
    BlockManager,
    Lost,
    RDDBlockId,
    ShuffleBlockId,
)
from dstream.backends.local_blocks import MEMORY_RECORDS_MAX_DEFAULT, MemoryStore
from dstream.errors import DStreamValueError
from dstream.pickling import dumps_records
from dstream.storage_level import StorageLevel

PLUGIN_NAME = "dstream-blocks"
HANDLER = "dstream_blocks"
PICKLE_PROTOCOL = 5
PROTOCOL_VERSION = 1  # of the messages between a driver and its workers: see the module docstring
RPC_TIMEOUT_S = 30.0
WORKER_WAIT_S = 30.0  # how long a put waits for a worker when none is registered


def _dumps(value: Any) -> bytes:
    """A value for the wire: a list of text records without pickle's memo (`dumps_records`: about a
    tenth of the cost, the same value), anything else with `pickle.dumps`."""
    return dumps_records(value)


def _as_frame(data: bytes) -> Any:
    """`data` sent as a frame of its own in a Dask message (not copied into the message's msgpack)."""
    return Serialize(data)  # type: ignore[no-untyped-call]


def put_message(block_id: BlockId, value: Any, level: StorageLevel, size_records: int) -> dict[str, Any]:
    """The handler's ``put`` message (see the module docstring), from the driver or a peer worker."""
    return {
        "action": "put",
        "block": _dumps(block_id),
        "value": _as_frame(_dumps(value)),
        "level": _dumps(level),
        "size_records": size_records,
    }


class FetchCounter:
    """How many blocks, and how many pickled bytes, this worker's tasks fetched from other workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.blocks = 0
        self.bytes = 0

    def add(self, nbytes: int) -> None:
        with self._lock:
            self.blocks += 1
            self.bytes += nbytes

    def read(self) -> tuple[int, int]:
        with self._lock:
            return self.blocks, self.bytes


class BlockManagerPlugin(WorkerPlugin):
    """Gives each worker a store of blocks and the `dstream_blocks` RPC handler.

    Args:
        memory_records_max: each worker's memory budget in records (see `MemoryStore`).
    """

    idempotent = True
    name = PLUGIN_NAME

    def __init__(self, memory_records_max: int = MEMORY_RECORDS_MAX_DEFAULT) -> None:
        self.memory_records_max = memory_records_max
        self.store: MemoryStore | None = None
        self.worker: Worker | None = None
        self.fetches: FetchCounter | None = None  # made on the worker: the plugin is pickled to it

    def setup(self, worker: Worker) -> None:
        self.worker = worker
        self.store = MemoryStore(worker.address, self.memory_records_max)
        self.fetches = FetchCounter()
        worker.handlers[HANDLER] = self.serve

    def teardown(self, worker: Worker) -> None:
        if self.store is not None:
            self.store.drop_all()
        worker.handlers.pop(HANDLER, None)

    def serve(
        self, action: str, block: bytes = b"", value: bytes = b"", level: bytes = b"", size_records: int = 0
    ) -> Any:
        """The RPC handler (runs on the worker's event loop): one block action, arguments pickled."""
        store = self.store
        assert store is not None
        if action == "put":
            store.put(pickle.loads(block), pickle.loads(value), pickle.loads(level), size_records)
            return True
        if action == "get":
            found = store.get(pickle.loads(block))
            return None if isinstance(found, Lost) else _as_frame(_dumps(found))
        raise DStreamValueError(f"unknown block action {action!r}; expected 'put' or 'get'")


def plugin_of(worker: Worker) -> BlockManagerPlugin:
    """The worker's block plugin.

    Raises:
        DStreamValueError: the plugin was not registered on this worker.
    """
    plugin = worker.plugins.get(PLUGIN_NAME)
    if not isinstance(plugin, BlockManagerPlugin) or plugin.store is None or plugin.fetches is None:
        raise DStreamValueError(
            f"worker {worker.address} has no {PLUGIN_NAME!r} plugin; register BlockManagerPlugin() first"
        )
    return plugin


class WorkerBlockManager(BlockManager):
    """The block manager tasks use on one Dask worker (call it from task threads, not the event loop)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        plugin = plugin_of(worker)
        self.store: MemoryStore = plugin.store  # type: ignore[assignment]
        self.fetches: FetchCounter = plugin.fetches  # type: ignore[assignment]

    @property
    def executor_id(self) -> str:
        return str(self.worker.address)

    def _call(self, address: str, **msg: Any) -> Any:
        async def call() -> Any:
            return await self.worker.rpc(address).dstream_blocks(**msg)

        return sync(self.worker.loop, call, callback_timeout=RPC_TIMEOUT_S)

    def _peers(self) -> list[str]:
        async def identity() -> Any:
            return await self.worker.scheduler.identity()

        workers = sync(self.worker.loop, identity, callback_timeout=RPC_TIMEOUT_S)["workers"]
        return sorted(a for a in workers if a != self.executor_id)

    def put(
        self, block_id: BlockId, value: Any, level: StorageLevel = MEMORY_ONLY, size_records: int = 0
    ) -> tuple[str, ...]:
        self.store.put(block_id, value, level, size_records)
        if level.replication < 2:
            return (self.executor_id,)
        peers = self._peers()
        if not peers:
            return (self.executor_id,)
        peer = peers[hash(block_id) % len(peers)]
        self._call(peer, **put_message(block_id, value, level, size_records))
        return (self.executor_id, peer)

    def get(self, block_id: BlockId, locations: tuple[str, ...] = ()) -> Any:
        found = self.store.get(block_id)
        if not isinstance(found, Lost):
            return found
        remote = [a for a in locations if a != self.executor_id and "://" in a]  # not the driver's
        if remote:
            alive = set(self._peers())  # a dead holder is not called: its connect would retry 30 s
            remote = [a for a in remote if a in alive]
        for address in remote:
            try:
                data = self._call(address, action="get", block=_dumps(block_id))
            except OSError:
                continue  # that holder is gone: try the next one
            if data is not None:
                self.fetches.add(len(data))
                return pickle.loads(data)
        return Lost(block_id)

    def locations(self, block_id: BlockId) -> tuple[str, ...]:
        return (self.executor_id,) if self.store.contains(block_id) else ()

    def replicate(self, block_id: BlockId) -> tuple[str, ...]:
        value = self.store.get(block_id)
        if isinstance(value, Lost):
            return ()
        return self.put(block_id, value, StorageLevel.MEMORY_ONLY_2)

    def remove(self, block_id: BlockId) -> None:
        self.store.remove(block_id)

    def remove_rdd(self, rdd_id: int) -> None:
        self.store.remove_where(lambda b: isinstance(b, RDDBlockId) and b.rdd_id == rdd_id)

    def remove_shuffle(self, shuffle_id: int) -> None:
        self.store.remove_where(lambda b: isinstance(b, ShuffleBlockId) and b.shuffle_id == shuffle_id)

    def block_ids(self) -> set[BlockId]:
        return self.store.block_ids()

    def close(self) -> None:
        self.store.drop_all()


def worker_block_manager(worker: Worker) -> WorkerBlockManager:
    """The block manager of `worker` for its tasks (one per worker: keep it with the worker's env)."""
    return WorkerBlockManager(worker)


# -- functions the driver runs on workers with Client.run (each gets the worker as `dask_worker`) ----


def _on_contains(block: bytes, dask_worker: Worker) -> bool:
    return plugin_of(dask_worker).store.contains(pickle.loads(block))  # type: ignore[union-attr]


def _on_remove(block: bytes, dask_worker: Worker) -> None:
    plugin_of(dask_worker).store.remove(pickle.loads(block))  # type: ignore[union-attr]


def _on_remove_kind(kind: str, owner_id: int, dask_worker: Worker) -> None:
    store = plugin_of(dask_worker).store
    assert store is not None
    if kind == "rdd":
        store.remove_where(lambda b: isinstance(b, RDDBlockId) and b.rdd_id == owner_id)
    else:
        store.remove_where(lambda b: isinstance(b, ShuffleBlockId) and b.shuffle_id == owner_id)


def _on_block_ids(dask_worker: Worker) -> bytes:
    return _dumps(plugin_of(dask_worker).store.block_ids())  # type: ignore[union-attr]


def _on_fetch_counts(dask_worker: Worker) -> tuple[int, int]:
    return plugin_of(dask_worker).fetches.read()  # type: ignore[union-attr]


def _on_drop_all(dask_worker: Worker) -> None:
    plugin_of(dask_worker).store.drop_all()  # type: ignore[union-attr]


class WorkerView(Protocol):
    """Which workers are alive, without a round trip, and calls to them (dstream.backends.dask.membership)."""

    def alive(self) -> list[str]:
        """Addresses of the workers alive now, sorted."""

    def refresh(self) -> None:
        """Ask the scheduler now (after waiting for a worker to join)."""

    def run(self, func: Any, *args: Any, workers: list[str] | None, timeout_s: float) -> dict[str, Any]:
        """`Client.run` on those of `workers` (default: all) alive; errors as values; {} if none answered."""

    def call(self, workers: list[str], handler: str, timeout_s: float, **msg: Any) -> dict[str, Any]:
        """`msg` to the `handler` of each of `workers` alive, directly, at once; the answers by address
        (a worker's error as its value); a worker gone or silent for `timeout_s` is left out."""


class _AskScheduler:
    """The view without events: one scheduler round trip per question."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def alive(self) -> list[str]:
        return sorted(self.client.scheduler_info()["workers"])

    def refresh(self) -> None:
        pass

    def run(self, func: Any, *args: Any, workers: list[str] | None, timeout_s: float) -> dict[str, Any]:
        alive = self.alive()
        if workers is None:
            targets = alive
        else:
            known = set(alive)
            targets = [w for w in workers if w in known]
        if not targets:
            return {}
        try:
            result: dict[str, Any] = self.client.run(
                func, *args, workers=targets, on_error="return", callback_timeout=timeout_s
            )
        except OSError:
            return {}  # every target is gone, or one died after the list was read (TimeoutError)
        return result

    def call(self, workers: list[str], handler: str, timeout_s: float, **msg: Any) -> dict[str, Any]:
        known = set(self.alive())
        found: dict[str, Any] = {}
        for address in (w for w in workers if w in known):
            try:
                found[address] = self.client.sync(  # type: ignore[no-untyped-call]
                    getattr(self.client.rpc(address), handler), callback_timeout=timeout_s, **msg
                )
            except OSError:
                continue  # it died after the list was read, or did not answer in time (TimeoutError)
            except Exception as exc:
                found[address] = exc
        return found


class DaskBlockManagerClient(BlockManager):
    """The driver's view of the blocks on every worker of a Dask cluster (through `Client.run`).

    Args:
        client: a connected `distributed.Client`; the plugin is registered on it here.
        memory_records_max: each worker's memory budget in records.
        view: which workers are alive; by default the scheduler is asked before each call.
        started: called before each put: an embedded cluster's wait (once) for its workers to start,
            which raises if one failed to.
    """

    def __init__(
        self,
        client: Client,
        memory_records_max: int = MEMORY_RECORDS_MAX_DEFAULT,
        view: WorkerView | None = None,
        started: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self._started = started
        self._view: WorkerView = view if view is not None else _AskScheduler(client)
        client.register_plugin(BlockManagerPlugin(memory_records_max), name=PLUGIN_NAME)
        self._turn = itertools.count()
        self._lock = threading.Lock()

    @property
    def executor_id(self) -> str:
        return "driver"

    def workers(self) -> list[str]:
        """Addresses of the workers alive now, sorted."""
        return self._view.alive()

    def _run(self, func: Any, *args: Any, workers: list[str] | None = None) -> dict[str, Any]:
        # Through the view: a dead worker is left out, not called (connecting to it would retry for
        # Dask's whole connect timeout, 30 s, once per block asked for).
        result = self._view.run(func, *args, workers=workers, timeout_s=RPC_TIMEOUT_S)
        return {w: r for w, r in result.items() if not isinstance(r, BaseException)}

    def put(
        self, block_id: BlockId, value: Any, level: StorageLevel = MEMORY_ONLY, size_records: int = 0
    ) -> tuple[str, ...]:
        if self._started is not None:
            self._started()
        workers = self.workers()
        if not workers:  # between a dead worker and its nanny's replacement: wait, bounded
            try:
                self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError:
                pass
            self._view.refresh()
            workers = self.workers()
        if not workers:
            raise DStreamValueError(
                f"the Dask cluster has no worker to put a block on (waited {WORKER_WAIT_S:g} s for one)"
            )
        with self._lock:
            first = next(self._turn) % len(workers)
        copies = max(1, min(level.replication, len(workers)))
        targets = [workers[(first + i) % len(workers)] for i in range(copies)]
        return self.put_on(targets, block_id, value, level, size_records)

    def put_near(self, executors: tuple[str, ...], block_id: BlockId, value: Any) -> tuple[str, ...]:
        alive = set(self.workers())
        for target in (w for w in executors if w in alive):
            done = self.put_on([target], block_id, value, MEMORY_ONLY)
            if done:
                return done
        return self.put(block_id, value)  # none of them is alive (or answered): round robin

    def put_on(
        self, targets: list[str], block_id: BlockId, value: Any, level: StorageLevel, size_records: int = 0
    ) -> tuple[str, ...]:
        """Put the block on each worker of `targets` (at once); returns the workers that hold it."""
        if not (level.useMemory or level.useDisk):
            raise DStreamValueError(f"storage level {level!r} stores nothing; expected memory and/or disk")
        done = self._view.call(
            targets, HANDLER, RPC_TIMEOUT_S, **put_message(block_id, value, level, size_records)
        )
        return tuple(w for w in targets if done.get(w) is True)

    def get(self, block_id: BlockId, locations: tuple[str, ...] = ()) -> Any:
        holders = list(locations) or list(self.locations(block_id))
        for address in holders:
            data = self._view.call([address], HANDLER, RPC_TIMEOUT_S, action="get", block=_dumps(block_id))
            found = data.get(address)
            if isinstance(found, bytes):
                return pickle.loads(found)
        return Lost(block_id)

    def locations(self, block_id: BlockId) -> tuple[str, ...]:
        found = self._run(_on_contains, _dumps(block_id))
        return tuple(sorted(w for w, has in found.items() if has))

    def replicate(self, block_id: BlockId) -> tuple[str, ...]:
        where = self.locations(block_id)
        spare = [w for w in self.workers() if w not in where]
        if not where or not spare:
            return where
        value = self.get(block_id, where)
        if isinstance(value, Lost):
            return self.locations(block_id)
        self.put_on(spare[:1], block_id, value, MEMORY_ONLY)
        return self.locations(block_id)

    def remove(self, block_id: BlockId) -> None:
        self._run(_on_remove, _dumps(block_id))

    def remove_rdd(self, rdd_id: int) -> None:
        self._run(_on_remove_kind, "rdd", rdd_id)

    def remove_shuffle(self, shuffle_id: int) -> None:
        self._run(_on_remove_kind, "shuffle", shuffle_id)

    def block_ids(self) -> set[BlockId]:
        found: set[BlockId] = set()
        for data in self._run(_on_block_ids).values():
            found |= pickle.loads(data)
        return found

    def fetch_counts(self) -> dict[str, tuple[int, int]]:
        """Per live worker: the blocks its tasks fetched from other workers, and their pickled bytes
        (since the worker started; what data locality saves shows here)."""
        return self._run(_on_fetch_counts)

    def lose_executor(self, executor_id: str) -> None:
        """Drop every block of worker `executor_id`, as its death would (tests, chaos)."""
        self._run(_on_drop_all, workers=[executor_id])

    def close(self) -> None:
        self._run(_on_drop_all)
