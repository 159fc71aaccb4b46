"""Atomic per-batch text-file directories: the storage protocol behind DStream.saveAsTextFiles.

A batch's output is the directory `<prefix>-<batch_ms>[.<suffix>]/` holding `part-NNNNN` (one per
partition, one `str(record)` per line) and the `_SUCCESS` marker. The rule for readers: **a directory
without `_SUCCESS` does not exist**; `read_text_batches` applies it. `_SUCCESS` holds the JSON object
`{"format": "dstream-text-output", "version": 1, "parts": [names...]}` (Hadoop tools only test that
it exists), so a reader reads exactly the parts of the attempt that published it.

Publish technique, by the storage's capability:

- local disk: tasks write and fsync the parts into `<parent>/.<name>.tmp-<uuid>/`, the driver writes
  `_SUCCESS` there, fsyncs the directory, renames it to `<name>` (rename(2) of a directory fails when
  the target exists and is not empty, which makes it create-once) and fsyncs the parent. The directory
  appears complete or not at all; a crash leaves only a dot-prefixed temp directory, deleted by the
  next attempt at that batch (as is a `<name>` directory without `_SUCCESS`, which readers ignore).
- object stores and memory (no directory rename): tasks PUT the parts at their final keys, the driver
  deletes stray parts of earlier attempts and publishes `_SUCCESS` last with a create-once put. Until
  then the directory is absent to readers.

A batch whose `_SUCCESS` exists is skipped, so a re-run batch leaves the published output unchanged;
a re-run after a crash before `_SUCCESS` rewrites the same parts (recomputation is deterministic).
Crash point between the parts and the publish: `output.after_parts_before_success`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from checkpoint import crashpoints
from checkpoint.errors import AlreadyPublishedError
from checkpoint.location import capability_of, resolve
from checkpoint.publish import publisher_for
from wal.durable_fs import fsync_directory

SUCCESS_MARKER = "_SUCCESS"
FORMAT = "dstream-text-output"
FORMAT_VERSION = 1
CRASH_AFTER_PARTS_BEFORE_SUCCESS = "output.after_parts_before_success"


def _part(index: int) -> str:
    return f"part-{index:05d}"


def _lines(records: Iterator[Any]) -> bytes:
    return "".join(f"{record}\n" for record in records).encode("utf-8")


def _local_part_writer(tmp_dir: str) -> Any:
    def write(index: int, records: Iterator[Any]) -> list[str]:
        name = _part(index)
        with open(os.path.join(tmp_dir, name), "wb") as out:
            out.write(_lines(records))
            out.flush()
            os.fsync(out.fileno())
        return [name]

    return write


def _remote_part_writer(url: str, storage_options: Mapping[str, Any]) -> Any:
    def write(index: int, records: Iterator[Any]) -> list[str]:
        fs, root = resolve(url, storage_options)
        fs.pipe_file(f"{root}/{_part(index)}", _lines(records))
        return [_part(index)]

    return write


def _marker(parts: list[str]) -> bytes:
    return json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "parts": sorted(parts)}).encode()


def _save_local(rdd: Any, final: str) -> None:
    parent, name = os.path.split(os.path.abspath(final))
    os.makedirs(parent, exist_ok=True)
    for stale in os.listdir(parent):  # temp dirs of crashed attempts at this batch
        if stale.startswith(f".{name}.tmp-"):
            shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
    tmp = os.path.join(parent, f".{name}.tmp-{uuid.uuid4().hex}")
    os.mkdir(tmp)
    try:
        parts = rdd.mapPartitionsWithIndex(_local_part_writer(tmp)).collect()
        crashpoints.crash_point(CRASH_AFTER_PARTS_BEFORE_SUCCESS)
        with open(os.path.join(tmp, SUCCESS_MARKER), "wb") as out:
            out.write(_marker(parts))
            out.flush()
            os.fsync(out.fileno())
        fsync_directory(tmp)
        if os.path.isdir(final) and not is_published(final):
            shutil.rmtree(final)  # unpublished, so absent to readers: e.g. left by a non-atomic writer
        try:
            os.rename(tmp, final)
        except OSError as exc:
            # EEXIST/ENOTEMPTY: a concurrent attempt published first; its content equals ours.
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not is_published(final):
                raise
        fsync_directory(parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save_remote(rdd: Any, url: str, storage_options: Mapping[str, Any]) -> None:
    fs, root = resolve(url, storage_options)
    parts = rdd.mapPartitionsWithIndex(_remote_part_writer(url, storage_options)).collect()
    fs.invalidate_cache(root)
    with contextlib.suppress(FileNotFoundError):
        for path in fs.ls(root, detail=False):
            stray = str(path).rstrip("/").rsplit("/", 1)[-1]
            if stray.startswith("part-") and stray not in parts:
                fs.rm_file(path)  # a part of an earlier attempt with more partitions
    crashpoints.crash_point(CRASH_AFTER_PARTS_BEFORE_SUCCESS)
    with contextlib.suppress(AlreadyPublishedError):
        publisher_for(fs).publish(f"{root}/{SUCCESS_MARKER}", _marker(parts))


def is_published(url: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether the text-file directory at `url` is complete (has `_SUCCESS`)."""
    fs, root = resolve(url, storage_options)
    fs.invalidate_cache(root)
    return bool(fs.exists(f"{root}/{SUCCESS_MARKER}"))


def save_text_batch(rdd: Any, url: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Publish one batch's RDD atomically as the text-file directory `url`; False if already there.

    Raises:
        UnsupportedStorageError: the store has no atomic publish (see checkpoint.publish).
        OSError: a write failed; nothing was published.
    """
    options = dict(storage_options or {})
    if is_published(url, options):
        return False
    fs, root = resolve(url, options)
    if capability_of(fs) == "local":
        _save_local(rdd, root)
    else:
        _save_remote(rdd, url, options)
    return True


def read_text_batches(
    prefix: str, suffix: str | None = None, storage_options: Mapping[str, Any] | None = None
) -> dict[int, list[str]]:
    """The published batches under `prefix`: {batch_ms: lines in part order}; unpublished ones are absent."""
    fs, root = resolve(prefix, storage_options)
    parent, base = root.rstrip("/").rsplit("/", 1) if "/" in root.rstrip("/") else ("", root)
    tail = "" if suffix is None else re.escape(f".{suffix}")
    pattern = re.compile(rf"{re.escape(base)}-(\d+){tail}")
    fs.invalidate_cache(parent)
    out: dict[int, list[str]] = {}
    try:
        listing = fs.ls(parent or ".", detail=False)
    except FileNotFoundError:
        return out
    for path in listing:
        found = pattern.fullmatch(str(path).rstrip("/").rsplit("/", 1)[-1])
        if found is None:
            continue
        directory = str(path).rstrip("/")
        try:
            marker = json.loads(fs.cat_file(f"{directory}/{SUCCESS_MARKER}"))
        except FileNotFoundError:
            continue  # not published: absent to readers
        lines: list[str] = []
        for part in marker["parts"]:
            lines += fs.cat_file(f"{directory}/{part}").decode("utf-8").splitlines()
        out[int(found.group(1))] = lines
    return dict(sorted(out.items()))
