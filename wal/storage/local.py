"""Local disk: the only module of dstream that calls os.write, fsync/fdatasync, os.replace, os.link, flock.

Why raw `os` calls instead of fsspec: durability needs fsync of a file and of its directory (a new
name is durable only once its directory is fsynced, and a directory created on the way only once its
parent is), a failed append must be cut back with ftruncate, publish needs link/rename, and the driver
lease needs a lock the kernel drops when the holder dies; fsspec exposes none of these.

Techniques: appends are `os.writev` of the caller's buffers (never joined) on an O_APPEND descriptor;
`publish` writes `.<name>.tmp-<uuid>` beside the target, fsyncs it, links it to the final name
(EEXIST if taken; `os.replace` when overwriting), unlinks the temp name and fsyncs the directory, so
a crash leaves at worst a dot-prefixed temp file that readers ignore; `create_once` is an O_EXCL
write + fsync + directory fsync; `lock` is `flock(LOCK_EX | LOCK_NB)` on a file holding the holder's
description.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from fsspec.implementations.local import make_path_posix

from wal.errors import LockHeldError
from wal.storage.base import AppendFile, Buffer, Hook, LockHandle, RandomAccess, Storage

IOV_BUFFERS_MAX = 512  # under every platform's IOV_MAX (1024 on Linux)
HOLDER_BYTES_MAX = 4096  # how much of a lock file is read to name its holder
_LOCK_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def _write_all(fd: int, buffers: Sequence[Buffer]) -> int:
    """Write the buffers in order without joining them (os.writev), finishing any short write.

    Returns:
        The number of bytes written (all of them).
    """
    size = 0
    for first in range(0, len(buffers), IOV_BUFFERS_MAX):
        chunk = buffers[first : first + IOV_BUFFERS_MAX]
        written = os.writev(fd, chunk)
        total = sum(len(b) for b in chunk)
        if written < total:  # rare (signals, full disk): write the rest plainly
            rest = memoryview(b"".join(chunk))[written:]
            while rest:
                rest = rest[os.write(fd, rest) :]
        size += total
    return size


class FileSource:
    """Random access over an open file descriptor, read with pread (segments can be gigabytes)."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        parts: list[bytes] = []
        while length > 0:
            part = os.pread(self._fd, length, offset)
            if not part:
                break
            parts.append(part)
            offset += len(part)
            length -= len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)


class _LocalFile(AppendFile):
    def __init__(self, path: str, fd: int) -> None:
        super().__init__(path, 0)
        self.fd: int | None = fd


class _LocalLock(LockHandle):
    def __init__(self, path: str, fd: int) -> None:
        super().__init__(path)
        self.fd: int | None = fd


def _fd_of(file: AppendFile) -> int:
    if not isinstance(file, _LocalFile) or file.fd is None:
        raise ValueError(f"{file.path!r} is not a file open on local storage (closed, or another storage's)")
    return file.fd


class LocalStorage(Storage):
    """The local filesystem (``file://``, ``local://`` and plain paths)."""

    kind = "local"
    can_append = True
    atomic_rename = True
    can_lock = True

    def __init__(self, protocol: str = "file") -> None:
        self.protocol = protocol

    def normalize_path(self, path: str) -> str:
        return str(make_path_posix(path))

    # -- appendable files ----------------------------------------------------------------------

    def open_append(self, path: str) -> AppendFile:
        return _LocalFile(path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644))

    def append(self, file: AppendFile, buffers: Sequence[Buffer]) -> None:
        file.size += _write_all(_fd_of(file), buffers)

    def fsync(self, file: AppendFile, *, data_only: bool = False) -> None:
        if data_only:
            os.fdatasync(_fd_of(file))
        else:
            os.fsync(_fd_of(file))

    def truncate_open(self, file: AppendFile, size: int) -> None:
        fd = _fd_of(file)
        os.ftruncate(fd, size)
        os.fsync(fd)
        file.size = size

    def close_file(self, file: AppendFile) -> None:
        if isinstance(file, _LocalFile) and file.fd is not None:
            fd, file.fd = file.fd, None
            os.close(fd)

    def truncate(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- whole objects -------------------------------------------------------------------------

    def create_once(self, path: str, data: bytes) -> None:
        """O_EXCL write, fsync, directory fsync. A crash mid-write can leave a short file: readers that
        need all-or-nothing visibility use `publish`."""
        directory = os.path.dirname(path) or "."
        self.make_dirs(directory)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, [data])
            os.fsync(fd)
        finally:
            os.close(fd)
        self.fsync_dir(directory)

    def publish(
        self, path: str, data: bytes, *, overwrite: bool = False, before_publish: Hook = None
    ) -> None:
        directory = os.path.dirname(path) or "."
        self.make_dirs(directory)
        tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                _write_all(fd, [data])
                os.fsync(fd)
            finally:
                os.close(fd)
            if before_publish is not None:
                before_publish()
            if overwrite:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)  # atomic create-once: EEXIST if the name is taken
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.fsync_dir(directory)

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    @contextmanager
    def open_read(self, path: str) -> Iterator[RandomAccess]:
        fd = os.open(path, os.O_RDONLY)
        try:
            yield FileSource(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)

    def size(self, path: str) -> int:
        return os.stat(path).st_size

    # -- names ---------------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def list_names(self, path: str) -> list[str]:
        try:
            return os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def list_sizes(self, path: str) -> dict[str, int]:
        try:
            with os.scandir(path) as entries:
                return {e.name: 0 if e.is_dir() else e.stat().st_size for e in entries}
        except (FileNotFoundError, NotADirectoryError):
            return {}

    def find(self, path: str) -> list[str]:
        found = [os.path.join(top, name) for top, _, names in os.walk(path) for name in names]
        return sorted(found)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        if not os.path.isdir(path):
            os.unlink(path)
        elif recursive:
            shutil.rmtree(path)
        else:
            os.rmdir(path)

    def make_dirs(self, path: str, *, durable: bool = True) -> None:
        missing: list[str] = []
        probe = os.path.abspath(path)
        while not os.path.isdir(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        for directory in reversed(missing):
            try:
                os.mkdir(directory)
            except FileExistsError:  # created concurrently: its parent entry is someone else's to sync
                pass
            if durable:
                self.fsync_dir(os.path.dirname(directory))

    def rename_dir(self, source: str, target: str) -> None:
        try:
            os.rename(source, target)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):  # rename(2) refuses a non-empty target
                raise FileExistsError(errno.EEXIST, f"{target!r} exists and is not empty") from exc
            raise
        self.fsync_dir(os.path.dirname(target) or ".")

    # -- exclusive lock ------------------------------------------------------------------------

    def lock(self, path: str, holder: bytes) -> LockHandle:
        self.make_dirs(os.path.dirname(path) or ".")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            current = os.pread(fd, HOLDER_BYTES_MAX, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in _LOCK_BUSY:
                raise LockHeldError(path, current) from exc
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder, 0)
        return _LocalLock(path, fd)

    def unlock(self, handle: LockHandle) -> None:
        if isinstance(handle, _LocalLock) and handle.fd is not None:
            fd, handle.fd = handle.fd, None
            os.close(fd)  # closing the only descriptor drops the flock
