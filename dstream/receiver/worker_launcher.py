"""Receivers on Dask workers, driver side: placement, launches, and the endpoint workers report to.

The Dask backend's `ReceiverLauncher` (the seam of `ReceiverTracker`; the local backend has none and
keeps each supervisor on a driver thread). For each start of a receiver the tracker's restart loop gets
a `RemoteSupervisor` handle; its `start` picks a worker (`placement.choose_worker`: the previous worker
while alive, else `Receiver.preferredLocation()`, else the least loaded) and starts the receiver there
with `Client.run(worker_host.start_on_worker, workers=[address])`, a thread of the worker's
`ReceiverHost`, never a task.

The receiver's supervisor on the worker calls back, request/response, into a `distributed.core.Server`
that this module runs on the client's event loop, bound to 127.0.0.1 (`ReceiverEndpoint`, handler
``dstream_receiver``); each request runs on a thread pool of the endpoint, so the loop never waits on
the tracker's WAL:

- ``report``: add a stored block to the `ReceivedBlockTracker` (logged before the reply, so `store()`
  returns after the driver logged the block); the block's locations (the worker, and the replica's
  worker for a level of replication 2) travel in its `ReceivedBlockInfo` to the block RDD's refs.
- ``view``: the tracker's known block ids and cleaned bound, for the WAL recovery at a start.
- ``budget``: take (waiting `wait_s` at most), force or give back records of the stream's `RecordBudget`.
- ``event``: started / error / stopped (to the listener bus), placed (the receiver's bound address, for
  `pushStream`'s address and resolver), terminated (the supervisor ended: the tracker's loop decides).

Every request names its launch; a launch that is not the stream's current one (its worker was declared
dead and the receiver started elsewhere) may not report blocks or take budget: its late blocks are in
the receiver WAL, which the new start's recovery adopts, so taking them here too would count them twice.
Records a launch took from the budget and never reported are given back when it ends.

Worker death: the handle's `await_termination` also watches the backend's membership view (every
`MEMBERSHIP_POLL_S`); once the worker is gone the handle ends with `ReceiverWorkerLostError`, and the
tracker starts the receiver again after its restart delay, on another alive worker (or the nanny's
replacement), through the supervisor's usual recovery: the receiver WAL's unreported blocks are adopted.

The driver's copy of the receiver stays attached to the handle, so `receiver.restart()`,
`reportError()` and `isStarted()` called on the driver reach the worker; `store()` there is refused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import pickle
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, cast

import cloudpickle
from distributed.core import Server

from dstream.backends.block_manager import ReceivedBlockId
from dstream.backends.dask.backend import DaskBackend
from dstream.backends.dask_blocks import plugin_of
from dstream.errors import DStreamError, DStreamStateError
from dstream.receiver.placement import choose_worker
from dstream.receiver.receiver import Receiver
from dstream.receiver.receiver_tracker import ReceiverTracker, receiver_wal_url
from dstream.receiver.supervisor import ReceiverSupervisor
from dstream.receiver.worker_host import (
    HANDLER,
    LaunchSpec,
    clean_wal_on_worker,
    dumps,
    portable_error,
    restart_on_worker,
    set_rate_on_worker,
    start_on_worker,
    stop_on_worker,
    write_state_on_worker,
)

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MEMBERSHIP_POLL_S = 0.5  # how often a waiting handle checks the membership view for its worker
WORKER_WAIT_S = 30.0  # a start waits this long for a worker when none is alive (a nanny's replacement)
ENDPOINT_THREADS_MAX = 32  # requests served at once (budget requests wait up to their wait_s)
ADDRESS_WAIT_S = 60.0
RUN_TIMEOUT_S = 60.0  # bound on one call to a live worker (stop, restart, snapshot, WAL cleanup)


class ReceiverWorkerLostError(DStreamError):
    """The worker hosting a receiver left the cluster (died, or was declared dead)."""


class RemoteSupervisor:
    """The driver's handle on one start of a receiver on a worker (a `SupervisorHandle`).

    Args:
        launcher: the launcher that made it.
        stream_id: the input stream.
        receiver: the driver's copy of the receiver (shipped at `start`).
    """

    def __init__(self, launcher: WorkerLauncher, stream_id: int, receiver: Receiver) -> None:
        self._launcher = launcher
        self.stream_id = stream_id
        self.receiver = receiver
        self.launch_id = uuid.uuid4().hex[:12]
        self.worker: str | None = None
        self.worker_pid: int | None = None
        self.address: tuple[str, int] | None = None
        self.started_once = False
        self.stop_message = ""
        self.error: BaseException | None = None
        self._started = False
        self._terminated = threading.Event()
        self._checked_s = 0.0

    # -- the SupervisorHandle protocol ----------------------------------------------------------------
    def start(self) -> None:
        """Place the receiver on a worker and start it there (raises if no worker would take it)."""
        self._launcher.start_remote(self)

    def await_termination(self, timeout_s: float | None = None) -> bool:
        if self._terminated.wait(timeout_s):
            return True
        now = time.monotonic()
        if self.worker is not None and now - self._checked_s >= MEMBERSHIP_POLL_S:
            self._checked_s = now
            if not self._launcher.is_alive(self.worker):
                message = f"worker {self.worker} hosting receiver {self.stream_id} was lost"
                self.terminated(message, ReceiverWorkerLostError(message), self._started)
        return self._terminated.is_set()

    def stop(self, message: str, error: BaseException | None = None) -> None:
        """Stop the receiver on its worker (its buffered records are stored first) and end this handle."""
        if not self._terminated.is_set() and self.worker is not None:
            self._launcher.run_on(self.worker, stop_on_worker, self.stream_id, self.launch_id, message, False)
        self.terminated(message, error, self._started)

    def set_rate_limit(self, rate_per_s: float | None) -> None:
        if self.worker is not None and not self._terminated.is_set():
            self._launcher.run_on(self.worker, set_rate_on_worker, self.stream_id, rate_per_s)

    # -- what the endpoint tells it -------------------------------------------------------------------
    def started(self) -> None:
        self._started = True

    def placed(self, address: tuple[str, int]) -> None:
        self.address = (str(address[0]), int(address[1]))
        self._launcher.notify()

    def terminated(self, message: str, error: BaseException | None, started_once: bool) -> None:
        if self._terminated.is_set():
            return
        self.stop_message, self.error = message, error
        self.started_once = self.started_once or started_once
        self._terminated.set()
        self._launcher.ended(self)

    @property
    def placed_at(self) -> tuple[str, int] | None:
        """The address it listens on, once running on a worker whose process id is known."""
        if self.running and self.worker_pid is not None:
            return self.address
        return None

    @property
    def running(self) -> bool:
        return self.worker is not None and not self._terminated.is_set()

    # -- the driver's copy of the receiver is controlled through this handle --------------------------
    def restart_receiver(self, message: str, error: BaseException | None, delay_ms: int | None) -> None:
        """`receiver.restart()` called on the driver: restart the receiver on its worker."""
        if self.running:
            assert self.worker is not None
            args = (self.stream_id, message, delay_ms, portable_error(error))  # it must pickle
            if self._launcher.run_on(self.worker, restart_on_worker, *args):
                return  # the worker's supervisor reported it, as a receiver's own restart does
        self.report_error(f"restarting receiver {self.stream_id}: {message}", error)

    def report_error(self, message: str, error: BaseException | None = None) -> None:
        self._launcher.tracker.events.on_receiver_error(self.stream_id, message, error)

    def is_receiver_started(self) -> bool:
        return self._started and self.running

    def is_receiver_stopped(self) -> bool:
        return not self.is_receiver_started()

    def _refuse(self, *_: Any, **__: Any) -> None:
        raise DStreamStateError(
            f"receiver {self.stream_id} runs on worker {self.worker}: only its copy there may store records"
        )

    push_single = push_many = push_multiple = push_state = _refuse


class ReceiverEndpoint:
    """The driver's RPC server for receivers on workers (handler ``dstream_receiver``, on 127.0.0.1).

    Args:
        client: the Dask client; the server runs on its event loop.
        dispatch: `(action, message) -> value`, run on the endpoint's thread pool.
    """

    def __init__(self, client: Any, dispatch: Callable[[str, dict[str, Any]], Any]) -> None:
        self._client = client
        self._dispatch = dispatch
        self._pool = concurrent.futures.ThreadPoolExecutor(ENDPOINT_THREADS_MAX, "receiver-endpoint")
        self._server = Server({HANDLER: self._handle})  # type: ignore[no-untyped-call]
        self._client.sync(self._listen)
        self.address: str = str(self._server.address)

    async def _listen(self) -> None:
        await self._server.listen(f"tcp://{HOST}:0")  # type: ignore[no-untyped-call]

    async def _handle(self, action: str, payload: bytes) -> bytes:
        message = pickle.loads(payload)
        loop = asyncio.get_running_loop()
        try:
            value = await loop.run_in_executor(self._pool, self._dispatch, action, message)
        except Exception as exc:
            return dumps((False, f"{type(exc).__name__}: {exc}"))
        return dumps((True, value))

    def close(self) -> None:
        try:
            self._client.sync(self._server.close)
        except Exception:
            log.warning("closing the receiver endpoint failed", exc_info=True)
        self._pool.shutdown(wait=False, cancel_futures=True)


class WorkerLauncher:
    """Runs a tracker's receivers on the workers of a Dask backend (see the module docstring).

    Args:
        backend: the Context's Dask backend.
        checkpoint_dir: the checkpoint directory (the receiver WALs are under it), or None.
        storage_options: fsspec options for it.
    """

    def __init__(
        self, backend: DaskBackend, checkpoint_dir: str | None, storage_options: Mapping[str, Any]
    ) -> None:
        self.client = backend.client
        self._backend = backend
        self.plugin_name = backend.executor_plugin_name
        self._wait_for_workers = backend.wait_for_workers
        self._checkpoint_dir = checkpoint_dir
        self._storage_options = dict(storage_options)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._current: dict[int, RemoteSupervisor] = {}
        self._last_worker: dict[int, str] = {}
        self._taken: dict[tuple[int, str], set[str]] = {}  # (stream, launch) -> budget taken, not reported
        self._tracker: ReceiverTracker | None = None
        self._endpoint: ReceiverEndpoint | None = None

    @property
    def tracker(self) -> ReceiverTracker:
        if self._tracker is None:
            raise DStreamStateError("the receiver launcher is not bound to a ReceiverTracker")
        return self._tracker

    def bind(self, tracker: ReceiverTracker) -> None:
        self._tracker = tracker
        self._endpoint = ReceiverEndpoint(self.client, self._dispatch)

    # -- placement and launches ---------------------------------------------------------------------
    def launch(self, stream_id: int, receiver: Receiver) -> RemoteSupervisor:
        handle = RemoteSupervisor(self, stream_id, receiver)
        with self._lock:
            self._current[stream_id] = handle
            self._changed.notify_all()
        # The driver's copy steers the worker's (restart, reportError, isStarted); see RemoteSupervisor.
        receiver._attach(cast(ReceiverSupervisor, handle), stream_id)
        return handle

    def is_alive(self, worker: str) -> bool:
        """Whether `worker` is in the backend's membership view (no round trip)."""
        return worker in self._backend.alive_workers()

    def start_remote(self, handle: RemoteSupervisor) -> None:
        """Choose a worker for `handle` and start its receiver there (its pid lands in the handle).

        Both the choice and the call go through the backend's membership view: a worker that was
        SIGKILLed is not chosen once it left the view, and a start sent to one that dies meanwhile is
        abandoned as soon as it leaves (a plain `Client.run` would wait out Dask's 30 s connect timeout).
        """
        self._wait_for_workers()  # an embedded cluster's workers start in the background
        alive = self._backend.alive_workers(refresh=True)  # a worker that just joined may not be in it yet
        if not alive:
            try:
                self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError:
                pass
            alive = self._backend.alive_workers(refresh=True)
        with self._lock:  # chosen and taken at once: receivers starting together spread over workers
            load: dict[str, int] = {}
            for sid, other in self._current.items():
                if sid != handle.stream_id and other.running and other.worker is not None:
                    load[other.worker] = load.get(other.worker, 0) + 1
            previous = self._last_worker.get(handle.stream_id)
            worker = choose_worker(alive, handle.receiver.preferredLocation(), previous, load)
            if worker is not None:  # the worker's first requests already name this placement
                handle.worker = worker
                self._last_worker[handle.stream_id] = worker
                self._changed.notify_all()
        if worker is None:
            raise DStreamStateError(
                f"no Dask worker is alive to run receiver {handle.stream_id} (waited {WORKER_WAIT_S:g} s)"
            )
        handle.receiver.detach_from_driver()
        spec = self._spec(handle)
        found = self._backend.run_on_workers(
            start_on_worker, self.plugin_name, dumps(spec), workers=[worker], timeout_s=RUN_TIMEOUT_S
        )
        if worker not in found:
            raise ReceiverWorkerLostError(
                f"worker {worker} left, or did not answer within {RUN_TIMEOUT_S:g} s, before receiver "
                f"{handle.stream_id} started on it"
            )
        pid = found[worker]
        if isinstance(pid, BaseException):  # the worker's own error: a failed start
            raise pid
        with self._lock:
            handle.worker_pid = int(pid)
            self._changed.notify_all()

    def _spec(self, handle: RemoteSupervisor) -> LaunchSpec:
        tracker = self.tracker
        assert self._endpoint is not None
        sid = handle.stream_id
        wal_url = None
        if tracker.config.wal_enabled and self._checkpoint_dir is not None:
            wal_url = receiver_wal_url(self._checkpoint_dir, sid)
        return LaunchSpec(
            sid,
            handle.launch_id,
            cloudpickle.dumps(handle.receiver, protocol=5),
            tracker.config,
            self._endpoint.address,
            wal_url,
            self._storage_options,
            tracker.rate_limit(sid),
            tracker.budget(sid).records_max,
        )

    def run_on(self, worker: str, func: Any, *args: Any) -> Any:
        """`func(*args)` on one worker; None (logged) when that worker is gone or the call failed.

        Through the backend's membership view (`DaskBackend.run_on_workers`): a worker that was
        SIGKILLed is given up as soon as it leaves the view. A plain `Client.run` to it would wait out
        Dask's 30 s connect timeout, holding up whoever asked (a cleanup writing the receivers'
        snapshots, and a graceful stop behind it).
        """
        name = getattr(func, "__name__", func)
        try:
            found = self._backend.run_on_workers(
                func, self.plugin_name, *args, workers=[worker], timeout_s=RUN_TIMEOUT_S
            )
        except Exception:
            log.warning("could not run %s on worker %s", name, worker, exc_info=True)
            return None
        if worker not in found:
            log.warning("could not run %s on worker %s: it is gone or did not answer", name, worker)
            return None
        value = found[worker]
        if isinstance(value, BaseException):
            log.warning("running %s on worker %s failed", name, worker, exc_info=value)
            return None
        return value

    def notify(self) -> None:
        with self._lock:
            self._changed.notify_all()

    def ended(self, handle: RemoteSupervisor) -> None:
        """A launch ended: give back the budget it took and never reported."""
        with self._lock:
            taken = self._taken.pop((handle.stream_id, handle.launch_id), set())
            self._changed.notify_all()
        if taken:
            self.tracker.budget(handle.stream_id).release(sorted(taken))

    # -- what the tracker asks ------------------------------------------------------------------------
    def handle(self, stream_id: int) -> RemoteSupervisor | None:
        with self._lock:
            return self._current.get(stream_id)

    def location(self, stream_id: int) -> str | None:
        """The worker the stream's receiver runs on, or ran on last (None before its first placement)."""
        with self._lock:
            return self._last_worker.get(stream_id)

    def address(self, stream_id: int, timeout_s: float = ADDRESS_WAIT_S) -> tuple[str, int]:
        """The (host, port) the stream's receiver listens on once placed; waits (bounded) for a placement.

        Raises:
            DStreamStateError: no placement with an address within `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                handle = self._current.get(stream_id)
                if handle is not None and handle.placed_at is not None:
                    return handle.placed_at
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DStreamStateError(
                        f"receiver {stream_id} has no address yet (not placed on a worker within"
                        f" {timeout_s:g} s)"
                    )
                self._changed.wait(min(left, MEMBERSHIP_POLL_S))

    def write_recovery_state(self, stream_id: int) -> bool:
        handle = self.handle(stream_id)
        if handle is None or not handle.running or handle.worker is None:
            return False
        return bool(self.run_on(handle.worker, write_state_on_worker, stream_id))

    def clean_wal(self, stream_id: int, threshold_ms: int) -> None:
        handle = self.handle(stream_id)
        if handle is not None and handle.running and handle.worker is not None:
            self.run_on(handle.worker, clean_wal_on_worker, stream_id, threshold_ms)

    def remove_blocks(self, block_ids: list[str]) -> None:
        if not block_ids:
            return
        try:  # every worker alive: a dead one is skipped, not waited for (see `run_on`)
            self._backend.run_on_workers(_remove_received, block_ids, workers=None, timeout_s=RUN_TIMEOUT_S)
        except Exception:
            log.warning("could not remove %d received blocks from the workers", len(block_ids), exc_info=True)

    def close(self) -> None:
        """Close the receiver WALs the workers hold open, then the endpoint."""
        with self._lock:
            placed = dict(self._last_worker)
        alive = set(self._backend.alive_workers()) if placed else set()
        for stream_id, worker in sorted(placed.items()):
            if worker in alive:
                self.run_on(worker, stop_on_worker, stream_id, "", "stopped by ReceiverTracker", True)
        if self._endpoint is not None:
            self._endpoint.close()
            self._endpoint = None

    # -- the endpoint's requests (on its thread pool) -------------------------------------------------
    def _dispatch(self, action: str, message: dict[str, Any]) -> Any:
        stream_id, launch_id = int(message["stream_id"]), str(message["launch_id"])
        with self._lock:
            handle = self._current.get(stream_id)
        current = handle if handle is not None and handle.launch_id == launch_id else None
        if action == "event":
            return self._on_event(stream_id, current, message)
        if action == "view":
            return self.tracker.tracker_view(stream_id)
        if action == "budget":
            return self._on_budget(stream_id, launch_id, current, message)
        if action == "report":
            if current is None or not current.running:
                raise DStreamStateError(
                    f"launch {launch_id} of receiver {stream_id} was superseded; its block stays in its WAL"
                )
            info = message["info"]
            self.tracker.record_block(info)  # fenced: a driver that lost its lease records nothing
            with self._lock:
                self._taken.get((stream_id, launch_id), set()).discard(info.block_id)
            return None
        raise DStreamStateError(
            f"unknown receiver request {action!r}; expected report, view, budget or event"
        )

    def _on_budget(
        self, stream_id: int, launch_id: str, current: RemoteSupervisor | None, message: dict[str, Any]
    ) -> bool:
        budget = self.tracker.budget(stream_id)
        op = message["op"]
        if op == "release":
            ids = list(message["block_ids"])
            with self._lock:
                taken = self._taken.get((stream_id, launch_id), set())
                taken.difference_update(ids)
            budget.release(ids)
            return True
        if current is None or not current.running:
            raise DStreamStateError(f"launch {launch_id} of receiver {stream_id} was superseded")
        block_id, records = str(message["block_id"]), int(message["records"])
        if op == "force":
            budget.acquire(block_id, records, _SET)
        elif not budget.try_acquire(block_id, records, float(message["wait_s"])):
            return False
        with self._lock:
            self._taken.setdefault((stream_id, launch_id), set()).add(block_id)
        return True

    def _on_event(self, stream_id: int, current: RemoteSupervisor | None, message: dict[str, Any]) -> None:
        events = self.tracker.events
        kind = message["kind"]
        text = str(message.get("message", ""))
        error = message.get("error")
        if kind == "started":
            if current is not None:
                current.started()
            events.on_receiver_started(stream_id, text)
        elif kind == "error":
            events.on_receiver_error(stream_id, text, error)
        elif kind == "stopped":
            events.on_receiver_stopped(stream_id, text, error)
        elif kind == "placed" and current is not None:
            current.placed(message["address"])
        elif kind == "terminated" and current is not None:
            current.terminated(text, error, bool(message.get("started_once")))


_SET = threading.Event()
_SET.set()  # a stop event that is always set: `RecordBudget.acquire` then admits at once


def _remove_received(block_ids: list[str], dask_worker: Any) -> None:
    store = plugin_of(dask_worker).store
    assert store is not None
    for block_id in block_ids:
        store.remove(ReceivedBlockId(block_id))


def worker_launcher(
    backend: Any, checkpoint_dir: str | None, storage_options: Mapping[str, Any]
) -> WorkerLauncher | None:
    """The launcher for `backend`: a `WorkerLauncher` on the Dask backend, None (driver threads) otherwise."""
    if isinstance(backend, DaskBackend):
        return WorkerLauncher(backend, checkpoint_dir, storage_options)
    return None
