"""Receivers hosted on a Dask worker: the worker half of `dstream.receiver.worker_launcher`.

With the Dask backend each receiver runs on a worker, under a `ReceiverSupervisor` on a thread owned by
the worker's `ReceiverHost` (a service of the driver's `ExecutorEnv` on that worker, so it closes with
the executor plugin), never in a task: the worker's task slot stays free for tasks. The driver starts,
stops and steers it with `Client.run` calls to the functions at the end of this module (`start_on_worker`
...); the supervisor reaches the driver through a `DriverLink`, request/response over Dask's RPC layer
(the worker's connection pool, each call bounded by `CALL_TIMEOUT_S`) to the `dstream_receiver` handler
of the driver's endpoint (`worker_launcher.ReceiverEndpoint`).

What stays on the worker: the block generator, the blocks (stored through the worker's block manager:
`dask_blocks.WorkerBlockManager` keeps the first copy here and, for a level of replication 2, a second
on a peer worker, both named in the block's reported locations), and the stream's receiver WAL, opened
for writing here once per stream and registered for block readers on this worker. What the driver
decides, asked for each block: the block report (`store()` returns only once the driver's
`ReceivedBlockTracker` logged it, so reliable receivers ack after that), what the tracker knows (for the
WAL recovery at a start), and the record budget (`RemoteBudget`: the records stored and not yet
allocated live in the driver's `RecordBudget`, which allocations release). The rate limit is pushed
down by the driver (`set_rate_on_worker`); restarts of the receiver inside the supervisor happen here,
restarts of the supervisor are the driver's `ReceiverTracker` loop.

Messages: keyword fields of plain types; objects (block infos, receivers, errors) travel as pickles made
by the same code version on both sides: a change to them bumps the driver-worker `PROTOCOL_VERSION`
(dstream.backends.dask_blocks), which a worker checks when the driver's executor plugin reaches it.

A receiver on a worker runs on the worker's system clock: a driver's `ManualClock` cannot reach
another process (tests that drive a manual clock use the local backend).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import threading
from dataclasses import dataclass
from typing import Any

import cloudpickle
from distributed import Worker
from distributed.utils import sync

from dstream.backends.executor_env import ExecutorEnv
from dstream.clock import SystemClock
from dstream.config import ReceiverConfig
from dstream.errors import DStreamError, DStreamStateError
from dstream.receiver.block_handler import (
    BlockStoreHandler,
    StateRecord,
    WriteAheadLogHandler,
    encode_state_record,
)
from dstream.receiver.block_store import received_blocks
from dstream.receiver.receiver import Receiver
from dstream.receiver.receiver_tracker import open_receiver_log
from dstream.receiver.record_budget import RecordBudget
from dstream.receiver.supervisor import BlockHandler, ReceiverSupervisor
from dstream.receiver.wal_registry import receiver_wals
from wal import WriteAheadLog

log = logging.getLogger(__name__)

HANDLER = "dstream_receiver"
SERVICE = "receiver-host"
CALL_TIMEOUT_S = 60.0  # one call to the driver (a report waits for the tracker's logged write)
BUDGET_WAIT_S = 0.5  # the driver holds a budget request this long at most before answering "not yet"
STOP_JOIN_S = 30.0
PICKLE_PROTOCOL = 5


class RemoteCallError(DStreamError):
    """The driver answered a receiver's call with an error (or could not be reached in time)."""


def dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=PICKLE_PROTOCOL)


def portable_error(error: BaseException | None) -> BaseException | None:
    """`error` if it pickles (to cross to the driver), else a DStreamError carrying its repr."""
    if error is None:
        return None
    try:
        pickle.loads(dumps(error))
    except Exception:
        return DStreamError(repr(error))
    return error


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a worker needs to host one receiver (sent pickled with `start_on_worker`).

    Attributes:
        stream_id: the input stream.
        launch_id: this start's id; the driver refuses reports of any other (a superseded start).
        receiver: the receiver, cloudpickled (its class may live in the user's script).
        config: the receiver settings.
        driver_address: the driver endpoint's ``tcp://127.0.0.1:port``.
        wal_url: the stream's receiver WAL, or None without the WAL.
        storage_options: fsspec options for `wal_url`.
        rate_per_s: the rate limit to start with (None: none).
        budget_records_max: the stream's unallocated-records bound (for the size of `store_many`'s blocks).
    """

    stream_id: int
    launch_id: str
    receiver: bytes
    config: ReceiverConfig
    driver_address: str
    wal_url: str | None
    storage_options: dict[str, Any]
    rate_per_s: float | None
    budget_records_max: int | None


class DriverLink:
    """Request/response calls from a worker to the driver's receiver endpoint (Dask RPC, bounded)."""

    def __init__(self, worker: Worker, address: str, stream_id: int, launch_id: str) -> None:
        self.worker = worker
        self.address = address
        self.stream_id = stream_id
        self.launch_id = launch_id

    def call(self, action: str, **fields: Any) -> Any:
        """Call `action` on the driver from a thread of this worker (never its event loop).

        Raises:
            RemoteCallError: the driver refused, or did not answer within `CALL_TIMEOUT_S`.
        """
        payload = dumps({"stream_id": self.stream_id, "launch_id": self.launch_id, **fields})

        async def go() -> Any:
            return await self.worker.rpc(self.address).dstream_receiver(action=action, payload=payload)

        try:
            reply = sync(self.worker.loop, go, callback_timeout=CALL_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise RemoteCallError(
                f"the driver's receiver endpoint {self.address} did not answer {action}: {exc}"
            ) from exc
        ok, value = pickle.loads(reply)
        if not ok:
            raise RemoteCallError(f"the driver refused {action} of receiver {self.stream_id}: {value}")
        return value


class RemoteBudget(RecordBudget):
    """The stream's `RecordBudget` kept by the driver, taken and given back through the link.

    A waiting `acquire` asks again every `BUDGET_WAIT_S` (the driver holds each request that long) and,
    once `stop` is set, is admitted as the local budget admits a stopping waiter.
    """

    def __init__(self, link: DriverLink, records_max: int | None) -> None:
        super().__init__(records_max)
        self._link = link

    def acquire(self, block_id: str, records: int, stop: threading.Event) -> None:
        while not stop.is_set():
            if self._link.call(
                "budget", op="acquire", block_id=block_id, records=records, wait_s=BUDGET_WAIT_S
            ):
                return
        self._link.call("budget", op="force", block_id=block_id, records=records, wait_s=0.0)

    def release(self, block_ids: list[str]) -> None:
        self._link.call("budget", op="release", block_ids=list(block_ids))

    def wake(self) -> None:
        """Nothing to wake: a waiter re-checks its stop event after each bounded request."""


class RemoteEvents:
    """The supervisor's lifecycle events, sent to the driver's listener bus (failures only logged)."""

    def __init__(self, link: DriverLink) -> None:
        self._link = link

    def _send(self, kind: str, message: str = "", error: BaseException | None = None) -> None:
        try:
            self._link.call("event", kind=kind, message=message, error=portable_error(error))
        except DStreamError:
            log.warning(
                "receiver %d could not report %s to the driver", self._link.stream_id, kind, exc_info=True
            )

    def on_receiver_started(self, stream_id: int, name: str) -> None:
        self._send("started", name)

    def on_receiver_error(self, stream_id: int, message: str, error: BaseException | None) -> None:
        self._send("error", message, error)

    def on_receiver_stopped(self, stream_id: int, message: str, error: BaseException | None) -> None:
        self._send("stopped", message, error)


@dataclass
class Hosted:
    """One receiver running on this worker: its launch, supervisor and the thread watching it."""

    spec: LaunchSpec
    supervisor: ReceiverSupervisor
    link: DriverLink
    thread: threading.Thread | None = None


class ReceiverHost:
    """The receivers of one driver on one worker, and their open receiver WALs (an executor service)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hosted: dict[int, Hosted] = {}
        self._wals: dict[int, tuple[str, WriteAheadLog]] = {}
        self._env: ExecutorEnv | None = None
        self._cancelled: set[str] = set()  # launches told to stop (a few ids per restart, kept for good)

    def start(self, worker: Worker, env: ExecutorEnv, spec: LaunchSpec) -> None:
        """Run the receiver on a thread of its own (returns at once: called on the worker's loop).

        The thread builds the supervisor (opening the receiver WAL may take a while on an object store),
        starts it and tells the driver when it ends; a build that fails is a failed start, told likewise.
        """
        self._env = env
        with self._lock:
            old = self._hosted.get(spec.stream_id)
            if old is not None and not old.supervisor.await_termination(0):
                raise DStreamStateError(
                    f"receiver {spec.stream_id} still runs on {worker.address} (launch {old.spec.launch_id})"
                )
        link = DriverLink(worker, spec.driver_address, spec.stream_id, spec.launch_id)
        thread = threading.Thread(
            target=self._run, args=(worker, env, spec, link), name=f"receiver-{spec.stream_id}", daemon=True
        )
        thread.start()

    def _run(self, worker: Worker, env: ExecutorEnv, spec: LaunchSpec, link: DriverLink) -> None:
        try:
            hosted = self._build(env, spec, link)
        except Exception as exc:
            message = f"error starting receiver {spec.stream_id} on {worker.address}: {exc}"
            self._tell(link, "terminated", message=message, error=portable_error(exc), started_once=False)
            return
        hosted.thread = threading.current_thread()
        self._serve(hosted)

    def _build(self, env: ExecutorEnv, spec: LaunchSpec, link: DriverLink) -> Hosted:
        receiver = cloudpickle.loads(spec.receiver)
        if not isinstance(receiver, Receiver):
            raise TypeError(f"expected a dstream.Receiver for stream {spec.stream_id}, got {receiver!r}")
        supervisor = ReceiverSupervisor(
            receiver,
            spec.stream_id,
            self._handler(env, spec, receiver),
            lambda info: link.call("report", info=info),
            SystemClock(),
            spec.config,
            RemoteEvents(link),
            tracker_view=lambda: link.call("view"),
            budget=RemoteBudget(link, spec.budget_records_max),
            rate_per_s=spec.rate_per_s,
        )
        hosted = Hosted(spec, supervisor, link)
        with self._lock:
            self._hosted[spec.stream_id] = hosted
            if spec.launch_id in self._cancelled:  # stopped while it was being built: never start it
                supervisor.stop("stopped before it started")
        return hosted

    def _handler(self, env: ExecutorEnv, spec: LaunchSpec, receiver: Receiver) -> BlockHandler:
        blocks = received_blocks(env)
        if spec.wal_url is None:
            return BlockStoreHandler(receiver.storageLevel, blocks)
        clock = SystemClock()
        return WriteAheadLogHandler(
            self._wal(env, spec), spec.stream_id, clock, receiver.storageLevel, blocks=blocks
        )

    def _wal(self, env: ExecutorEnv, spec: LaunchSpec) -> WriteAheadLog:
        assert spec.wal_url is not None
        found = self._wals.get(spec.stream_id)
        if found is not None and found[0] == spec.wal_url:
            return found[1]
        wal = open_receiver_log(
            spec.wal_url, spec.config, spec.storage_options, batched=spec.config.wal_batched
        )
        self._wals[spec.stream_id] = (spec.wal_url, wal)
        receiver_wals(env).register(spec.wal_url, wal)
        return wal

    def _serve(self, hosted: Hosted) -> None:
        supervisor = hosted.supervisor
        try:
            if not supervisor.await_termination(0):  # not stopped while it was built
                supervisor.start()
        except Exception as exc:  # recovery or WAL trouble: like a failed onStart
            supervisor.stop(f"error starting receiver {hosted.spec.stream_id}: {exc}", exc)
        address = supervisor.receiver.bound_address() if supervisor.started_once else None
        if address is not None:
            self._tell(hosted.link, "placed", address=address)
        supervisor.await_termination()
        self._tell(
            hosted.link,
            "terminated",
            message=supervisor.stop_message,
            error=portable_error(supervisor.error),
            started_once=supervisor.started_once,
        )

    def _tell(self, link: DriverLink, kind: str, **fields: Any) -> None:
        try:
            link.call("event", kind=kind, **fields)
        except DStreamError:
            log.warning("receiver %d could not tell the driver %s", link.stream_id, kind, exc_info=True)

    def _current(self, stream_id: int, launch_id: str | None = None) -> Hosted | None:
        with self._lock:
            hosted = self._hosted.get(stream_id)
        if hosted is None or (launch_id is not None and hosted.spec.launch_id != launch_id):
            return None
        return hosted

    def stop(self, stream_id: int, launch_id: str, message: str, close_wal: bool) -> None:
        """Stop a launch (flushing its buffered records) and wait for it; close the WAL if told."""
        with self._lock:
            self._cancelled.add(launch_id)
        hosted = self._current(stream_id, launch_id)
        if hosted is not None:
            hosted.supervisor.stop(message)
            if hosted.thread is not None:
                hosted.thread.join(STOP_JOIN_S)
        if close_wal:
            self._close_wal(stream_id)

    def _close_wal(self, stream_id: int) -> None:
        with self._lock:
            found = self._wals.pop(stream_id, None)
        if found is not None:
            url, wal = found
            if self._env is not None:
                receiver_wals(self._env).unregister(url, wal)
            wal.close()

    def set_rate(self, stream_id: int, rate_per_s: float | None) -> None:
        hosted = self._current(stream_id)
        if hosted is not None:
            hosted.supervisor.set_rate_limit(rate_per_s)

    def restart(
        self, stream_id: int, message: str, delay_ms: int | None, error: BaseException | None
    ) -> bool:
        """Ask the running receiver to restart after `delay_ms` (None: the restart delay), as its
        `restart` does (which reports `error` to the driver); False when none runs here."""
        hosted = self._current(stream_id)
        if hosted is None or hosted.supervisor.await_termination(0):
            return False
        hosted.supervisor.restart_receiver(message, error, delay_ms)
        return True

    def write_recovery_state(self, stream_id: int) -> bool:
        """Write the receiver's `recovery_state` to its WAL (before a cleanup); False if it cannot: none
        runs here, or it has not rebuilt its state from the WAL yet (a restored receiver holds the state
        pickled in the checkpoint until then, and a snapshot of that would lose what it acknowledged
        since)."""
        hosted = self._current(stream_id)
        found = self._wals.get(stream_id)
        if hosted is None or found is None or hosted.supervisor.await_termination(0):
            return False
        if not hosted.supervisor.recovered:
            return False
        state = hosted.supervisor.receiver.recovery_state()
        if state is not None:
            now = SystemClock().time_ms()
            found[1].write(encode_state_record(StateRecord(stream_id, now, state)), now)
        return True

    def clean_wal(self, stream_id: int, threshold_ms: int) -> None:
        found = self._wals.get(stream_id)
        if found is not None:
            found[1].clean(threshold_ms, wait=False)

    def close(self) -> None:
        """Stop every receiver here and close the WALs (the executor is closing)."""
        with self._lock:
            hosted = list(self._hosted.values())
        for h in hosted:
            h.supervisor.stop("the worker's executor is closing")
        for stream_id in list(self._wals):
            self._close_wal(stream_id)


# -- functions the driver runs on a worker with Client.run (each gets the worker as `dask_worker`) ----
# A synchronous one runs on the worker's event loop, so anything that may call the driver (and so needs
# that loop) runs in a thread.


def _host(worker: Worker, plugin_name: str) -> tuple[ReceiverHost, ExecutorEnv]:
    env = getattr(worker.plugins.get(plugin_name), "env", None)
    if not isinstance(env, ExecutorEnv):
        raise DStreamStateError(f"worker {worker.address} has no dstream executor plugin {plugin_name!r}")
    return env.service(SERVICE, ReceiverHost), env


def start_on_worker(plugin_name: str, spec: bytes, dask_worker: Worker) -> int:
    """Start a receiver on this worker; returns the worker's process id (placement is checkable)."""
    host, env = _host(dask_worker, plugin_name)
    host.start(dask_worker, env, pickle.loads(spec))
    return os.getpid()


async def stop_on_worker(
    plugin_name: str, stream_id: int, launch_id: str, message: str, close_wal: bool, dask_worker: Worker
) -> None:
    host, _ = _host(dask_worker, plugin_name)
    await asyncio.to_thread(host.stop, stream_id, launch_id, message, close_wal)


def set_rate_on_worker(
    plugin_name: str, stream_id: int, rate_per_s: float | None, dask_worker: Worker
) -> None:
    _host(dask_worker, plugin_name)[0].set_rate(stream_id, rate_per_s)


async def restart_on_worker(
    plugin_name: str,
    stream_id: int,
    message: str,
    delay_ms: int | None,
    error: BaseException | None,
    dask_worker: Worker,
) -> bool:
    host, _ = _host(dask_worker, plugin_name)
    return await asyncio.to_thread(host.restart, stream_id, message, delay_ms, error)


async def write_state_on_worker(plugin_name: str, stream_id: int, dask_worker: Worker) -> bool:
    host, _ = _host(dask_worker, plugin_name)
    return await asyncio.to_thread(host.write_recovery_state, stream_id)


async def clean_wal_on_worker(
    plugin_name: str, stream_id: int, threshold_ms: int, dask_worker: Worker
) -> None:
    host, _ = _host(dask_worker, plugin_name)
    await asyncio.to_thread(host.clean_wal, stream_id, threshold_ms)
