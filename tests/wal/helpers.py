"""Test helpers for the WAL suites: open a log on a storage target and damage its files by hand."""

from __future__ import annotations

from typing import Any

import wal
from tests.support.s3servers import StorageTarget
from wal.segments import parse_object, parse_segment


def open_log(target: StorageTarget, **options: Any) -> wal.WriteAheadLog:
    """open_wal on the target with its storage options."""
    return wal.open_wal(target.url, storage_options=target.storage_options, **options)


def data_files(target: StorageTarget) -> list[str]:
    """Full fsspec paths of every segment file / object of the log, in write order."""
    fs = target.filesystem()
    fs.invalidate_cache()
    try:
        found = fs.find(target.url)
    except FileNotFoundError:
        return []
    root = fs._strip_protocol(target.url).rstrip("/")

    def key(path: str) -> tuple[int, int]:
        parts = path[len(root) + 1 :].split("/")
        segment = parse_segment(parts[0])
        obj = parse_object(parts[1]) if len(parts) > 1 else None
        assert segment is not None, path
        return (segment.seq, obj.n if obj else 0)

    return sorted(found, key=key)


def read_bytes(target: StorageTarget, path: str) -> bytes:
    return bytes(target.filesystem().cat_file(path))


def rewrite(target: StorageTarget, path: str, content: bytes) -> None:
    """Replace a file's bytes (simulating a crash cut or media corruption)."""
    fs = target.filesystem()
    fs.rm_file(path)
    fs.pipe_file(path, content)


def flip_bit(target: StorageTarget, path: str, bit: int) -> None:
    content = bytearray(read_bytes(target, path))
    content[bit // 8] ^= 1 << (bit % 8)
    rewrite(target, path, bytes(content))


def is_appendable(target: StorageTarget) -> bool:
    return target.kind in ("local", "memory")
