"""Atomic per-batch text-file directories: the storage protocol behind DStream.saveAsTextFiles.

A batch's output is the directory `<prefix>-<batch_ms>[.<suffix>]/` holding `part-NNNNN` (one per
partition, one `str(record)` per line) and the `_SUCCESS` marker. The rule for readers: **a directory
without `_SUCCESS` does not exist**; `read_text_batches` applies it. `_SUCCESS` holds the JSON object
`{"format": "dstream-text-output", "version": 1, "parts": [names...]}` (Hadoop tools only test that
it exists), so a reader reads exactly the parts of the attempt that published it.

Publish technique, by the storage's capability (all I/O goes through `wal.storage`):

- `atomic_rename` (local disk): tasks publish the parts into `<parent>/.<name>.tmp-<uuid>/`, the
  driver publishes `_SUCCESS` there, then renames the directory to `<name>` with the storage's
  `rename_dir` (rename(2) of a directory fails when the target exists and is not empty, which makes
  it create-once; the parent is fsynced). The directory appears complete or not at all; a crash
  leaves only a dot-prefixed temp directory, deleted by the next attempt at that batch (as is a
  `<name>` directory without `_SUCCESS`, which readers ignore).
- otherwise (object stores, memory: no directory rename): tasks put the parts at their final keys,
  the driver deletes stray parts of earlier attempts and publishes `_SUCCESS` last with a
  create-once put. Until then the directory is absent to readers.

A batch whose `_SUCCESS` exists is skipped, so a re-run batch leaves the published output unchanged;
a re-run after a crash before `_SUCCESS` rewrites the same parts (recomputation is deterministic).
Crash point between the parts and the publish: `output.after_parts_before_success`.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from checkpoint.errors import AlreadyPublishedError
from checkpoint.location import base_name, join, resolve
from checkpoint.publish import publisher_for
from wal import crashpoints
from wal.storage import Storage

SUCCESS_MARKER = "_SUCCESS"
FORMAT = "dstream-text-output"
FORMAT_VERSION = 1
CRASH_AFTER_PARTS_BEFORE_SUCCESS = crashpoints.OUTPUT_AFTER_PARTS_BEFORE_SUCCESS

PartWriter = Callable[[int, Iterator[Any]], list[str]]


def _part(index: int) -> str:
    return f"part-{index:05d}"


def _lines(records: Iterator[Any]) -> bytes:
    return "".join(f"{record}\n" for record in records).encode("utf-8")


def _part_writer(dir_url: str, storage_options: Mapping[str, Any]) -> PartWriter:
    """A task function: publish one partition's lines as `<dir_url>/part-NNNNN` (replacing a retry's)."""

    def write(index: int, records: Iterator[Any]) -> list[str]:
        storage, root = resolve(dir_url, storage_options)
        storage.publish(join(root, _part(index)), _lines(records), overwrite=True)
        return [_part(index)]

    return write


def _marker(parts: list[str]) -> bytes:
    return json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "parts": sorted(parts)}).encode()


def _save_by_rename(rdd: Any, storage: Storage, url: str, final: str, options: Mapping[str, Any]) -> None:
    parent, name = final.rstrip("/").rsplit("/", 1)
    storage.make_dirs(parent)
    for stale in storage.list_names(parent):  # temp dirs of crashed attempts at this batch
        if stale.startswith(f".{name}.tmp-"):
            with contextlib.suppress(OSError):
                storage.delete(join(parent, stale), recursive=True)
    tmp_name = f".{name}.tmp-{uuid.uuid4().hex}"
    tmp = join(parent, tmp_name)
    storage.make_dirs(tmp, durable=False)  # made durable by the rename's parent fsync
    try:
        tmp_url = join(url.rstrip("/").rsplit("/", 1)[0], tmp_name) if "/" in url.rstrip("/") else tmp
        parts = rdd.mapPartitionsWithIndex(_part_writer(tmp_url, options)).collect()
        crashpoints.crash_point(CRASH_AFTER_PARTS_BEFORE_SUCCESS)
        storage.publish(join(tmp, SUCCESS_MARKER), _marker(parts))
        if storage.is_dir(final) and not storage.exists(join(final, SUCCESS_MARKER)):
            storage.delete(final, recursive=True)  # unpublished, so absent to readers
        try:
            storage.rename_dir(tmp, final)
        except FileExistsError:
            if not storage.exists(join(final, SUCCESS_MARKER)):
                raise
            # a concurrent attempt published first; its content equals ours
    finally:
        with contextlib.suppress(OSError):
            storage.delete(tmp, recursive=True)


def _save_in_place(rdd: Any, storage: Storage, url: str, root: str, options: Mapping[str, Any]) -> None:
    parts = rdd.mapPartitionsWithIndex(_part_writer(url, options)).collect()
    for stray in storage.list_names(root):
        if stray.startswith("part-") and stray not in parts:
            with contextlib.suppress(FileNotFoundError):
                storage.delete(join(root, stray))  # a part of an earlier attempt with more partitions
    crashpoints.crash_point(CRASH_AFTER_PARTS_BEFORE_SUCCESS)
    with contextlib.suppress(AlreadyPublishedError):
        publisher_for(storage).publish(join(root, SUCCESS_MARKER), _marker(parts))


def is_published(url: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether the text-file directory at `url` is complete (has `_SUCCESS`)."""
    storage, root = resolve(url, storage_options)
    return storage.exists(join(root, SUCCESS_MARKER))


def save_text_batch(rdd: Any, url: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Publish one batch's RDD atomically as the text-file directory `url`; False if already there.

    Raises:
        UnsupportedStorageError: no storage is registered for the URL's protocol.
        OSError: a write failed; nothing was published.
    """
    options = dict(storage_options or {})
    if is_published(url, options):
        return False
    storage, root = resolve(url, options)
    if storage.atomic_rename:
        _save_by_rename(rdd, storage, url, root, options)
    else:
        _save_in_place(rdd, storage, url, root, options)
    return True


def read_text_batches(
    prefix: str, suffix: str | None = None, storage_options: Mapping[str, Any] | None = None
) -> dict[int, list[str]]:
    """The published batches under `prefix`: {batch_ms: lines in part order}; unpublished ones are absent."""
    storage, root = resolve(prefix, storage_options)
    parent, base = root.rstrip("/").rsplit("/", 1) if "/" in root.rstrip("/") else ("", root)
    tail = "" if suffix is None else re.escape(f".{suffix}")
    pattern = re.compile(rf"{re.escape(base)}-(\d+){tail}")
    out: dict[int, list[str]] = {}
    for name in storage.list_names(parent or "."):
        found = pattern.fullmatch(base_name(name))
        if found is None:
            continue
        directory = join(parent, name) if parent else name
        try:
            marker = json.loads(storage.read(join(directory, SUCCESS_MARKER)))
        except FileNotFoundError:
            continue  # not published: absent to readers
        lines: list[str] = []
        for part in marker["parts"]:
            lines += storage.read(join(directory, part)).decode("utf-8").splitlines()
        out[int(found.group(1))] = lines
    return dict(sorted(out.items()))
