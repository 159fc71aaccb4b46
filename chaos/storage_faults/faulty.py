"""`FaultyStorage`: a storage that wraps any other and breaks its calls as a seeded plan says.

It is a `DelegatingStorage`, so it stands wherever the wrapped storage would (local disk with its
fast paths, memory, an object store), and every durable byte of the engine passes through it: the
WAL's appends and fsyncs, atomic publish, the lease's lock, checkpoints and sinks. Before each call it
asks the plan (`plan.decide`, pure) whether to fault, then injects:

* ``error`` / ``slowdown`` / ``enospc``: raises OSError (EIO; EBUSY with S3's "SlowDown" text, as
  s3fs raises it; ENOSPC) before the call, so nothing happens; except that an ENOSPC append (or
  create-once, as for torn writes) first writes a prefix of its bytes, as a disk that fills up
  mid-write does;
* ``latency``: calls the injected `sleep` (tests pass a recorder and never sleep), then the call;
* ``torn``: writes a prefix of the bytes (of an append, a create-once on storage without
  conditional puts, or, on storage that publishes by rename, the temporary file of a publish), then
  raises EIO or dies as ``then`` says; an object store's PUT is all or nothing, so there a torn
  whole-object write leaves nothing;
* ``lost_fsync``: an fsync (or directory fsync) returns without syncing;
* ``crash``: the injected `kill` (SIGKILL of this process by default): a process crash, after
  which everything written stays, as the kernel keeps it;
* ``power_cut``: `simulate_crash` (below), then `kill`.

Lost fsync needs a model of what is durable. For every file it opened for appending, this storage
keeps the size made durable by the last real fsync (or truncation), and whether its name was made
durable by a real fsync of its directory. `simulate_crash` applies that model to the wrapped
storage, as a power cut would: each such file is cut back to its durable size, and a file whose
name never became durable is removed. Whole-object writes (create-once, publish) sync themselves
inside the wrapped storage, so they are durable when they return unless a fault said otherwise.

Faults are counted per kind (`injected`), and `on_fault` (if given) hears each one before it
takes effect, which is how a chaos run records them in its history.
"""

from __future__ import annotations

import os
import posixpath
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from chaos.storage_faults.injector import FaultInjector, FaultListener
from chaos.storage_faults.plan import Fault, StorageFaultPlan
from wal.storage import AppendFile, Buffer, DelegatingStorage, LockHandle, RandomAccess, Storage
from wal.storage.base import Hook


def _sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class CrashReport:
    """What `simulate_crash` discarded.

    Attributes:
        truncated: {path: bytes cut off} for files that had unsynced appends.
        removed: files whose name never became durable, removed whole.
    """

    truncated: dict[str, int] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)


def _prefix(buffers: Sequence[Buffer], size: int) -> list[Buffer]:
    """The first `size` bytes of the buffers, as buffers."""
    out: list[Buffer] = []
    for buffer in buffers:
        if size <= 0:
            break
        view = memoryview(buffer)[:size]
        out.append(view)
        size -= len(view)
    return out


class FaultyStorage(DelegatingStorage):
    """Wraps `inner` and injects the faults `plan` decides (see the module docstring).

    Args:
        inner: the storage to wrap (any).
        plan: the seeded plan.
        sleep: what a latency fault calls with the delay in seconds.
        kill: what a crash or power cut calls to end the process (SIGKILL by default; a test may
            raise instead, standing for the process's death, and must then stop using the storage).
        on_fault: told about each fault before it takes effect.
    """

    def __init__(
        self,
        inner: Storage,
        plan: StorageFaultPlan,
        *,
        sleep: Callable[[float], None] = time.sleep,
        kill: Callable[[], None] = _sigkill,
        on_fault: FaultListener | None = None,
    ) -> None:
        super().__init__(inner)
        self.plan = plan
        self._faults = FaultInjector(plan, sleep=sleep, die=self.die, on_fault=on_fault)
        self._kill = kill
        self._durable_size: dict[str, int] = {}
        self._name_pending: set[str] = set()
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"FaultyStorage(seed={self.plan.seed}, {self.inner.describe()})"

    @property
    def injected(self) -> Counter[str]:
        """How many faults of each kind were injected so far."""
        return self._faults.injected

    def _decide(self, op: str, path: str) -> Fault | None:
        return self._faults.check(op, path)

    def _fail_after_prefix(self, fault: Fault, op: str, path: str) -> OSError:
        return self._faults.failure_after_prefix(fault, op, path)

    # -- the durability model ------------------------------------------------------------------

    def simulate_crash(self) -> CrashReport:
        """Discard what a power cut would: unsynced appends, and files whose name was never synced."""
        report = CrashReport()
        with self._lock:
            durable, self._durable_size = self._durable_size, {}
            pending, self._name_pending = self._name_pending, set()
        for path in sorted(pending):
            if self.inner.exists(path):
                self.inner.delete(path)
                report.removed.append(path)
        for path, size in sorted(durable.items()):
            if path in pending or not self.inner.exists(path):
                continue
            current = self.inner.size(path)
            if current > size:
                self.inner.truncate(path, size)
                report.truncated[path] = current - size
        return report

    def die(self, how: str) -> None:
        """`kill` this process ("crash"), after `simulate_crash` if `how` is "power_cut"."""
        if how == "power_cut":
            self.simulate_crash()
        self._kill()

    def _synced(self, path: str, size: int) -> None:
        with self._lock:
            if path in self._durable_size:
                self._durable_size[path] = size

    # -- appendable files ----------------------------------------------------------------------

    def open_append(self, path: str) -> AppendFile:
        self._decide("open_append", path)
        file = super().open_append(path)
        with self._lock:
            self._durable_size[path] = 0
            self._name_pending.add(path)
        return file

    def append(self, file: AppendFile, buffers: Sequence[Buffer]) -> None:
        fault = self._decide("append", file.path)
        if fault is None:
            super().append(file, buffers)
            return
        written = _prefix(buffers, int(sum(len(b) for b in buffers) * fault.fraction))
        if written:
            super().append(file, written)
        raise self._fail_after_prefix(fault, "append", file.path)

    def fsync(self, file: AppendFile, *, data_only: bool = False) -> None:
        if self._decide("fsync", file.path) is not None:
            return  # lost fsync: reported done, nothing made durable
        super().fsync(file, data_only=data_only)
        self._synced(file.path, file.size)

    def truncate_open(self, file: AppendFile, size: int) -> None:
        self._decide("truncate_open", file.path)
        super().truncate_open(file, size)
        self._synced(file.path, size)

    def truncate(self, path: str, size: int) -> None:
        self._decide("truncate", path)
        super().truncate(path, size)
        self._synced(path, size)

    def fsync_dir(self, path: str) -> None:
        if self._decide("fsync_dir", path) is not None:
            return
        super().fsync_dir(path)
        with self._lock:
            self._name_pending = {p for p in self._name_pending if posixpath.dirname(p) != path.rstrip("/")}

    # -- whole objects -------------------------------------------------------------------------

    def create_once(self, path: str, data: bytes) -> None:
        fault = self._decide("create_once", path)
        if fault is None:
            super().create_once(path, data)
            return
        if not self.conditional_put:  # a conditional PUT is all or nothing: no prefix to leave
            super().create_once(path, data[: int(len(data) * fault.fraction)])
        raise self._fail_after_prefix(fault, "create_once", path)

    def publish(
        self, path: str, data: bytes, *, overwrite: bool = False, before_publish: Hook = None
    ) -> None:
        fault = self._decide("publish", path)
        if fault is None:
            super().publish(path, data, overwrite=overwrite, before_publish=before_publish)
            return
        if self.atomic_rename:  # what a crash mid-write leaves: a partial temp file beside the target
            directory, name = posixpath.split(path)
            temp = posixpath.join(directory, f".{name}.tmp-torn-{fault.rule}-{fault.call}")
            super().create_once(temp, data[: int(len(data) * fault.fraction)])
        raise self._fail_after_prefix(fault, "publish", path)

    def read(self, path: str) -> bytes:
        self._decide("read", path)
        return super().read(path)

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        self._decide("read_range", path)
        return super().read_range(path, offset, length)

    def open_read(self, path: str) -> AbstractContextManager[RandomAccess]:
        self._decide("open_read", path)
        return super().open_read(path)

    def size(self, path: str) -> int:
        self._decide("size", path)
        return super().size(path)

    # -- names ---------------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        self._decide("exists", path)
        return super().exists(path)

    def is_dir(self, path: str) -> bool:
        self._decide("is_dir", path)
        return super().is_dir(path)

    def list_names(self, path: str) -> list[str]:
        self._decide("list_names", path)
        return super().list_names(path)

    def list_sizes(self, path: str) -> dict[str, int]:
        self._decide("list_sizes", path)
        return super().list_sizes(path)

    def find(self, path: str) -> list[str]:
        self._decide("find", path)
        return super().find(path)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self._decide("delete", path)
        super().delete(path, recursive=recursive)
        prefix = path.rstrip("/") + "/"
        with self._lock:
            for gone in [p for p in self._durable_size if p == path or p.startswith(prefix)]:
                del self._durable_size[gone]
                self._name_pending.discard(gone)

    def make_dirs(self, path: str, *, durable: bool = True) -> None:
        self._decide("make_dirs", path)
        super().make_dirs(path, durable=durable)

    def rename_dir(self, source: str, target: str) -> None:
        self._decide("rename_dir", target)
        super().rename_dir(source, target)

    # -- exclusive lock ------------------------------------------------------------------------

    def lock(self, path: str, holder: bytes) -> LockHandle:
        self._decide("lock", path)
        return super().lock(path, holder)
