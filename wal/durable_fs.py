"""Durable local-filesystem steps shared by the WAL's local backend and checkpoint publishing.

Why a module of its own: a new or removed file name is durable only once its directory is fsynced,
and a directory created on the way is durable only once its parent is. Both the WAL (segment files)
and checkpoint publishing (link into place) need exactly these steps; `checkpoint` may import `wal`,
so the one copy lives here.
"""

from __future__ import annotations

import os


def fsync_directory(path: str) -> None:
    """Make the directory's entries (created or removed names) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_directories(path: str, *, fsync: bool = True) -> None:
    """Create `path` and missing parents; with `fsync`, fsync each parent that gained an entry."""
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
        if fsync:
            fsync_directory(os.path.dirname(directory))
