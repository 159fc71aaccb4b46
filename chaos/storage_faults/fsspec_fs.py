"""`FaultyFileSystem`: the ``faulty`` protocol for code that goes through fsspec directly.

The engine's durable state goes through its storage seam (`faulty.FaultyStorage`), but a few paths
read and write with fsspec itself: text input files and RDD file output (`dstream.rdd.file_io`),
``textFileStream``'s listing and reads. This filesystem gives them the same faults: with the entry
point ``faulty`` of the group ``fsspec.specs``, ``fsspec.open("faulty::file:///in/a.txt")`` and
``url_to_fs("faulty::s3://bucket/x")`` wrap the inner URL's filesystem (fsspec's own chaining; an
unchained ``faulty:///p`` wraps local files). The plan is the storage option ``plan`` of the link
(``fsspec.open(url, faulty={"plan": {...}})``, or an unkeyed ``plan=`` for the outermost link), else
`DSTREAM_STORAGE_FAULTS`, as for the storage protocol.

Calls are named after the storage operations a plan already knows: listing is ``list_names``,
``info`` is ``size``, ``exists``/``isdir`` keep their names, reading a file (``cat_file``, or
``open`` for reading) is ``read`` / ``open_read``, writing a whole file (``pipe_file``, or ``open``
for writing) is ``publish``, removing is ``delete``, ``makedirs``/``mkdir`` is ``make_dirs``, a move is
``rename_dir``. Every kind but lost fsync applies (fsspec has no fsync); a torn ``pipe_file`` writes
a prefix of the bytes, a torn write through ``open`` fails before anything is written, and a power
cut is a crash (there is no durability model here).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

from chaos.storage_faults.injector import FaultInjector
from chaos.storage_faults.plan import StorageFaultPlan, parse_plan
from chaos.storage_faults.protocol import LOG_ENV_VAR, fault_logger, plan_from_environment

# fsspec hands a chained wrapper the inner path only if it is a ChainedFileSystem (newer fsspec);
# with an older fsspec, fsspec-level chains (``faulty::file://...``) do not work, unchained URLs do.
try:
    from fsspec.implementations.chained import ChainedFileSystem as _Base
except ImportError:  # pragma: no cover - older fsspec
    _Base = AbstractFileSystem


def _plan(document: Any) -> StorageFaultPlan:
    if document is not None:
        return parse_plan(document)
    return plan_from_environment() or StorageFaultPlan(seed=0)


class FaultyFileSystem(_Base):  # type: ignore[misc]
    """An fsspec filesystem that injects a plan's faults into another (see the module docstring)."""

    protocol = "faulty"
    root_marker = ""

    def __init__(
        self,
        target_protocol: str | None = None,
        target_options: dict[str, Any] | None = None,
        fs: AbstractFileSystem | None = None,
        plan: Any = None,
        fo: str | None = None,
        **storage_options: Any,
    ) -> None:
        super().__init__(**storage_options)
        self.fs = (
            fs if fs is not None else fsspec.filesystem(target_protocol or "file", **(target_options or {}))
        )
        log_path = os.environ.get(LOG_ENV_VAR)
        self.faults = FaultInjector(
            _plan(plan),
            sleep=time.sleep,
            die=lambda how: os.kill(os.getpid(), signal.SIGKILL),
            on_fault=fault_logger(log_path) if log_path else None,
        )

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        path = str(path)
        return path[len("faulty://") :] if path.startswith("faulty://") else path

    def unstrip_protocol(self, name: str) -> str:
        """A URL that reaches `name` through this wrapper again (``faulty::<inner URL>``)."""
        return f"faulty::{self.fs.unstrip_protocol(name)}"

    # -- names ---------------------------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        self.faults.check("list_names", path)
        return self.fs.ls(path, detail=detail, **kwargs)

    def info(self, path: str, **kwargs: Any) -> Any:
        self.faults.check("size", path)
        return self.fs.info(path, **kwargs)

    def exists(self, path: str, **kwargs: Any) -> bool:
        self.faults.check("exists", path)
        return bool(self.fs.exists(path, **kwargs))

    def isdir(self, path: str) -> bool:
        self.faults.check("is_dir", path)
        return bool(self.fs.isdir(path))

    def modified(self, path: str) -> Any:
        self.faults.check("size", path)
        return self.fs.modified(path)

    def created(self, path: str) -> Any:
        self.faults.check("size", path)
        return self.fs.created(path)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self.faults.check("make_dirs", path)
        self.fs.mkdir(path, create_parents=create_parents, **kwargs)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.faults.check("make_dirs", path)
        self.fs.makedirs(path, exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        self.faults.check("delete", path)
        self.fs.rmdir(path)

    def rm_file(self, path: str) -> None:
        self.faults.check("delete", path)
        self.fs.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        self.faults.check("delete", str(path))
        self.fs.rm(path, recursive=recursive, maxdepth=maxdepth)

    def mv(self, path1: str, path2: str, **kwargs: Any) -> None:
        self.faults.check("rename_dir", path2)
        self.fs.mv(path1, path2, **kwargs)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        self.faults.check("publish", path2)
        self.fs.cp_file(path1, path2, **kwargs)

    # -- bytes ---------------------------------------------------------------------------------

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> Any:
        self.faults.check("read", path)
        return self.fs.cat_file(path, start=start, end=end, **kwargs)

    def pipe_file(self, path: str, value: bytes, **kwargs: Any) -> None:
        fault = self.faults.check("publish", path)
        if fault is not None:  # torn or ENOSPC: a prefix, then the error
            self.fs.pipe_file(path, value[: int(len(value) * fault.fraction)], **kwargs)
            raise self.faults.failure_after_prefix(fault, "publish", path)
        self.fs.pipe_file(path, value, **kwargs)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        writing = any(c in mode for c in "wax+")
        fault = self.faults.check("publish" if writing else "open_read", path)
        if fault is not None:
            raise self.faults.failure_after_prefix(fault, "publish", path)
        return self.fs._open(path, mode=mode, **kwargs)
