"""`Receiver`: the user-extensible base class for custom sources, with Spark's receiver API names.

A subclass implements `onStart` (start threads that read from the source and call `store`; return
quickly) and `onStop` (stop those threads). The supervisor that runs it provides the rest:

- `store(record)` adds one record to the current block; `store(records)` with a list, iterator or
  generator stores them as one block right away. Tuples, strings, bytes and dicts are single records
  (a key-value pair is a tuple), so only lists and iterators are taken as many records.
  `store_many(records)` adds a list to the current block instead, as many `store(record)` calls would.
  With the receiver WAL on, `store` returns only once the block holding the data is durable (and
  registered with the driver's tracker): a reliable source may acknowledge its data after `store`.
- `restart(message, error)` stops the receiver (calling `onStop`) and starts it again after the restart
  delay, asynchronously; `reportError(message, error)` reports without stopping; `stop(message)` stops.
- `isStarted()` / `isStopped()` let the receiving threads know when to quit.

The same receiver object is started again after a restart with the local backend, so `onStart` must
(re)initialize whatever `onStop` tore down.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dstream.errors import DStreamStateError
from dstream.rdd.storage import StorageLevel

if TYPE_CHECKING:
    from dstream.receiver.supervisor import ReceiverSupervisor


def is_many_records(data: Any) -> bool:
    """Whether `store(data)` means several records: a list or an iterator (generators included)."""
    return isinstance(data, list | Iterator)


class Receiver:
    """Base class of receivers: subclass it and implement `onStart` and `onStop`.

    Args:
        storageLevel: where received blocks are kept (PySpark's StorageLevel constants).
    """

    def __init__(self, storageLevel: StorageLevel = StorageLevel.MEMORY_AND_DISK_2) -> None:
        if not isinstance(storageLevel, StorageLevel):
            raise TypeError(f"storageLevel must be a StorageLevel, got {storageLevel!r}")
        self.storageLevel = storageLevel
        self._supervisor: ReceiverSupervisor | None = None
        self._stream_id: int | None = None

    # -- to implement -----------------------------------------------------------------------------
    def onStart(self) -> None:
        """Start receiving: launch the threads that call `store`, then return."""
        raise NotImplementedError(f"{type(self).__name__} must implement onStart()")

    def onStop(self) -> None:
        """Stop receiving: make the threads started by `onStart` finish."""
        raise NotImplementedError(f"{type(self).__name__} must implement onStop()")

    def preferredLocation(self) -> str | None:
        """The worker this receiver should run on, or None to let the scheduler choose."""
        return None

    def bound_address(self) -> tuple[str, int] | None:
        """The (host, port) this receiver listens on for its source, or None (it connects out, or reads).

        The push receiver's; with the Dask backend it is reported to the driver once the receiver runs
        on its worker (`PushInputDStream.address`).
        """
        return None

    def detach_from_driver(self) -> None:
        """Release what this (driver) copy holds that the copy shipped to a worker takes over.

        Called on the driver before the receiver is started on a Dask worker; idempotent. The push
        receiver closes its listening socket, so that the worker binds the same port.
        """

    def on_recovered_blocks(self, metadata: list[dict[str, Any]]) -> None:
        """Called before `onStart` with what the receiver WAL says about past blocks, in log order.

        The list holds the snapshots returned by `recovery_state` (written before old WAL segments were
        cleaned), the states written by `store_state`, and the metadata of every logged block that the
        tracker has in a batch or waiting for one; blocks it never heard of come next, through
        `adopt_recovered_block`. A reliable
        receiver uses it to rebuild its acknowledgement state (e.g. the push receiver's per-producer
        sequence numbers). Without the WAL the list is empty.
        """

    def adopt_recovered_block(
        self, records: list[Any], metadata: dict[str, Any] | None
    ) -> tuple[list[Any], dict[str, Any] | None]:
        """Decide what of a logged block that never reached the tracker to register again (recovery).

        Called after `on_recovered_blocks`, in log order, for each such block (its records were never
        acknowledged: storing it raised, or the process died first). Return the records to register and
        their metadata; an empty list drops the block. A receiver whose source resends unacknowledged
        data drops what its state already holds here: a timed-out WAL write may have committed late
        *and* been resent. Do not change state here: once the returned part is durable and registered,
        its metadata is passed to `on_recovered_blocks` (so a failed adoption leaves the state as it
        was). The default registers the whole block.
        """
        return records, metadata

    def recovery_state(self) -> dict[str, Any] | None:
        """A small builtin-only snapshot of the acknowledgement state, or None (the default) for none.

        With the receiver WAL on it is written to the WAL just before old segments are cleaned, so that
        what `on_recovered_blocks` rebuilds does not depend on the cleaned blocks' metadata. It must
        cover every block stored so far, and is handed back to `on_recovered_blocks` after a restart.
        """
        return None

    # -- provided ---------------------------------------------------------------------------------
    def store(self, data: Any, metadata: dict[str, Any] | None = None) -> None:
        """Store one record, or a list/iterator of records as one block (with optional metadata)."""
        supervisor = self._require_supervisor("store")
        if is_many_records(data):
            supervisor.push_multiple(list(data), metadata)
        else:
            supervisor.push_single(data)

    def store_many(self, records: list[Any], wait_durable: bool = True) -> None:
        """Add many records to the current block in one call (not in Spark).

        Like calling `store(record)` for each, at the cost of one call: the records join the block being
        filled, which is cut every block interval, and count against the rate limit and the unallocated
        bound like single records. With the WAL on and `wait_durable` it returns once every block holding
        them is durable; a source that acknowledges nothing passes False and goes on reading at once.
        """
        self._require_supervisor("store_many").push_many(list(records), wait_durable)

    def store_state(self, state: dict[str, Any]) -> None:
        """Write a small builtin-only state dict to the receiver WAL (not in Spark).

        With the WAL on it is durable when this returns and comes back through `on_recovered_blocks`
        after a restart, in log order with the blocks and snapshots; without the WAL it does nothing.
        For state that must be durable before the receiver answers its source (e.g. a new producer epoch).
        """
        self._require_supervisor("store_state").push_state(state)

    def restart(self, message: str, error: BaseException | None = None, delay_ms: int | None = None) -> None:
        """Stop and start this receiver again, in the background, after the restart delay."""
        self._require_supervisor("restart").restart_receiver(message, error, delay_ms)

    def reportError(self, message: str, error: BaseException | None = None) -> None:
        """Report an error to the driver (listener bus) without stopping."""
        self._require_supervisor("reportError").report_error(message, error)

    def stop(self, message: str, error: BaseException | None = None) -> None:
        """Stop this receiver for good (the tracker may still start it again if the context runs)."""
        self._require_supervisor("stop").stop(message, error)

    def isStarted(self) -> bool:
        return self._supervisor is not None and self._supervisor.is_receiver_started()

    def isStopped(self) -> bool:
        return self._supervisor is None or self._supervisor.is_receiver_stopped()

    @property
    def streamId(self) -> int:
        if self._stream_id is None:
            raise DStreamStateError(f"{type(self).__name__} has no stream id before it is attached")
        return self._stream_id

    def _attach(self, supervisor: ReceiverSupervisor, stream_id: int) -> None:
        self._supervisor = supervisor
        self._stream_id = stream_id

    def _require_supervisor(self, what: str) -> ReceiverSupervisor:
        if self._supervisor is None:
            raise DStreamStateError(f"{what}() called on {type(self).__name__} before it was started")
        return self._supervisor

    def __getstate__(self) -> dict[str, Any]:
        # The supervisor (threads, locks) stays behind when a receiver is shipped to a worker.
        state = dict(self.__dict__)
        state["_supervisor"] = None
        return state
