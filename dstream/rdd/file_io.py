"""Reading and writing RDDs as files through fsspec: text files and pickle files.

Text input: a file, a directory (its files, skipping names that start with ``_`` or ``.``) or a
glob. Uncompressed files are cut into byte ranges; a range owns the lines whose first byte lies in
it (Hadoop's rule), so ranges can be read independently by tasks. Output refuses an existing
directory, writes one ``part-NNNNN`` per partition from the tasks and ``_SUCCESS`` last.

Pickle file format, version 1 (``saveAsPickleFile``; PySpark writes Hadoop SequenceFiles, which
have no place here)::

    offset  size  field
    0       4     magic b"DSPK"
    4       2     format version, little-endian (1)
    6       2     reserved, 0
    8       ...   pickle protocol 5 streams back to back, each a list of at most batchSize records

A reader checks magic and version and unpickles lists until end of file.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
from collections.abc import Iterator, Mapping
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING, Any

import fsspec
from fsspec.core import url_to_fs

from dstream.errors import DStreamError, DStreamValueError
from dstream.rdd.nodes import Node

if TYPE_CHECKING:
    from dstream.context import Context
    from dstream.rdd.rdd import RDD
    from dstream.rdd.tasks import TaskContext

PICKLE_MAGIC = b"DSPK"
PICKLE_VERSION = 1
PICKLE_HEADER = struct.Struct("<4sHH")
SPLIT_SIZE_MAX_BYTES = 64 * 1024 * 1024
_SCAN_BYTES = 64 * 1024
_WRITE_LINES = 4096
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4")
_CODECS = {"gzip": ("gzip", ".gz"), "bzip2": ("bz2", ".bz2")}


class OutputExistsError(DStreamError, FileExistsError):
    """An output directory already exists (Spark refuses to overwrite it)."""


def list_input_files(name: str, storage_options: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(url, size in bytes) of every input file named by a path, directory or glob, sorted."""
    fs, path = url_to_fs(name, **storage_options)
    if any(ch in path for ch in "*?["):
        infos = [fs.info(p) for p in fs.glob(path)]
    elif fs.isdir(path):
        infos = fs.ls(path, detail=True)
    elif fs.exists(path):
        infos = [fs.info(path)]
    else:
        raise FileNotFoundError(f"Input path does not exist: {name}")
    files = [i for i in infos if i.get("type") != "directory" and not _hidden(i["name"])]
    return sorted((fs.unstrip_protocol(i["name"]), int(i.get("size") or 0)) for i in files)


def _hidden(path: str) -> bool:
    base = path.rstrip("/").rsplit("/", 1)[-1]
    return base.startswith(("_", "."))


def text_splits(files: list[tuple[str, int]], min_partitions: int) -> list[tuple[str, int, int]]:
    """Cut files into (url, start, end) byte ranges: at least ``min_partitions`` in all if possible."""
    total = sum(size for _, size in files)
    goal = max(1, math.ceil(total / max(min_partitions, 1)))
    split_size = min(goal, SPLIT_SIZE_MAX_BYTES)
    splits = []
    for url, size in files:
        if url.endswith(_COMPRESSED) or size == 0:
            splits.append((url, 0, size))
            continue
        splits.extend((url, start, min(start + split_size, size)) for start in range(0, size, split_size))
    return splits


class TextFileNode(Node):
    """Lines of byte ranges of text files."""

    label = "TextFileRDD"

    def __init__(
        self, splits: list[tuple[str, int, int]], use_unicode: bool, storage_options: Mapping[str, Any]
    ):
        self.deps = []
        self.num_partitions = len(splits)
        self.splits = splits
        self.use_unicode = use_unicode
        self.storage_options = dict(storage_options)

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        url, start, end = self.splits[split]
        if url.endswith(_COMPRESSED):
            with fsspec.open(url, "rb", compression="infer", **self.storage_options) as f:
                data: bytes = f.read()
        else:
            data = _read_range(url, start, end, self.storage_options)
        return iter(_lines(data, self.use_unicode))


def _read_range(url: str, start: int, end: int, storage_options: Mapping[str, Any]) -> bytes:
    """The bytes of the lines that start in [start, end)."""
    if start >= end:
        return b""
    read_from = max(start - 1, 0)  # one byte back: tells whether a line starts exactly at `start`
    with fsspec.open(url, "rb", **storage_options) as f:
        f.seek(read_from)
        data: bytes = f.read(end - read_from)
        if not data.endswith(b"\n"):
            data += _rest_of_line(f)
    if start > 0:
        nl = data.find(b"\n")
        if nl < 0 or read_from + nl + 1 >= end:
            return b""
        data = data[nl + 1 :]
    return data


def _rest_of_line(f: Any) -> bytes:
    parts: list[bytes] = []
    while True:
        chunk = f.read(_SCAN_BYTES)
        if not chunk:
            break
        nl = chunk.find(b"\n")
        if nl >= 0:
            parts.append(chunk[: nl + 1])
            break
        parts.append(chunk)
    return b"".join(parts)


def _lines(data: bytes, use_unicode: bool) -> list[Any]:
    if not data:
        return []
    if data.endswith(b"\n"):
        data = data[:-1]
    if use_unicode:
        return [ln[:-1] if ln.endswith("\r") else ln for ln in data.decode("utf-8").split("\n")]
    return [ln[:-1] if ln.endswith(b"\r") else ln for ln in data.split(b"\n")]


def text_file(
    ctx: Context, name: str, min_partitions: int, use_unicode: bool, options: Mapping[str, Any]
) -> RDD[Any]:
    """The RDD of lines of ``name`` (see module docstring)."""
    from dstream.rdd.rdd import RDD

    ctx.check_reachable_by_workers(name, "input")
    splits = text_splits(list_input_files(name, options), min_partitions)
    return RDD(ctx, TextFileNode(splits, use_unicode, options)).setName(name)


def _prepare_output(path: str, options: Mapping[str, Any]) -> str:
    fs, root = url_to_fs(path, **options)
    if fs.exists(root):
        raise OutputExistsError(f"Output directory {path} already exists")
    fs.makedirs(root, exist_ok=True)
    return path.rstrip("/")


def _mark_success(base: str, options: Mapping[str, Any]) -> None:
    with fsspec.open(f"{base}/_SUCCESS", "wb", **options):
        pass


def _codec(name: str | None) -> tuple[str | None, str]:
    if name is None:
        return None, ""
    for key, value in _CODECS.items():
        if key in name.lower():
            return value
    raise DStreamValueError(
        f"unsupported compressionCodecClass {name!r}; expected a Gzip or BZip2 codec name"
    )


def save_as_text_file(rdd: RDD[Any], path: str, codec_class: str | None, options: Mapping[str, Any]) -> None:
    """Write each record as a line (``str(x)``, bytes as utf-8) to part files, then _SUCCESS."""
    compression, suffix = _codec(codec_class)
    opts = dict(options)
    rdd.context.check_reachable_by_workers(path, "output directory")
    base = _prepare_output(path, opts)

    write = partial(_write_text_part, base=base, suffix=suffix, compression=compression, options=opts)
    rdd.context._scheduler.run_job(rdd.mapPartitionsWithIndex(write), list, None, "saveAsTextFile")
    _mark_success(base, opts)


# Task-side writers are module-level functions bound with partial, so that they pickle by
# reference: a nested closure would drag module globals (e.g. a struct.Struct) into the task.
def _write_text_part(
    split: int, it: Iterator[Any], base: str, suffix: str, compression: str | None, options: dict[str, Any]
) -> Iterator[Any]:
    with fsspec.open(f"{base}/part-{split:05d}{suffix}", "wb", compression=compression, **options) as f:
        while batch := list(islice(it, _WRITE_LINES)):
            f.write("".join(f"{_text(x)}\n" for x in batch).encode("utf-8"))
    return iter(())


def _text(x: Any) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def save_as_pickle_file(rdd: RDD[Any], path: str, batch_size: int, options: Mapping[str, Any]) -> None:
    """Write records as pickled batches (format in the module docstring), then _SUCCESS."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DStreamValueError(f"batchSize must be a positive int, got {batch_size!r}")
    opts = dict(options)
    rdd.context.check_reachable_by_workers(path, "output directory")
    base = _prepare_output(path, opts)

    write = partial(_write_pickle_part, base=base, batch_size=batch_size, options=opts)
    rdd.context._scheduler.run_job(rdd.mapPartitionsWithIndex(write), list, None, "saveAsPickleFile")
    _mark_success(base, opts)


def _write_pickle_part(
    split: int, it: Iterator[Any], base: str, batch_size: int, options: dict[str, Any]
) -> Iterator[Any]:
    with fsspec.open(f"{base}/part-{split:05d}", "wb", **options) as f:
        f.write(PICKLE_HEADER.pack(PICKLE_MAGIC, PICKLE_VERSION, 0))
        while batch := list(islice(it, batch_size)):
            f.write(pickle.dumps(batch, 5))
    return iter(())


class PickleFileNode(Node):
    """Records of pickle files written by saveAsPickleFile, one partition per file."""

    label = "PickleFileRDD"

    def __init__(self, urls: list[str], storage_options: Mapping[str, Any]) -> None:
        self.deps = []
        self.num_partitions = len(urls)
        self.urls = urls
        self.storage_options = dict(storage_options)

    def compute(self, split: int, tctx: TaskContext) -> Iterator[Any]:
        url = self.urls[split]
        with fsspec.open(url, "rb", **self.storage_options) as f:
            data = f.read()
        return iter(decode_pickle_file(data, url))


def decode_pickle_file(data: bytes, where: str) -> list[Any]:
    """Records of one pickle part file; raises DStreamError on a bad header."""
    if len(data) < PICKLE_HEADER.size:
        raise DStreamError(f"{where}: not a dstream pickle file (only {len(data)} bytes)")
    magic, version, _ = PICKLE_HEADER.unpack_from(data)
    if magic != PICKLE_MAGIC or version != PICKLE_VERSION:
        raise DStreamError(
            f"{where}: bad header magic={magic!r} version={version}; expected {PICKLE_MAGIC!r} v1"
        )
    stream = io.BytesIO(data)
    stream.seek(PICKLE_HEADER.size)
    out: list[Any] = []
    while stream.tell() < len(data):
        out.extend(pickle.load(stream))
    return out


def pickle_file(ctx: Context, name: str, options: Mapping[str, Any]) -> RDD[Any]:
    """The RDD of records saved by saveAsPickleFile under ``name``."""
    from dstream.rdd.rdd import RDD

    ctx.check_reachable_by_workers(name, "input")
    urls = [url for url, _ in list_input_files(name, options)]
    return RDD(ctx, PickleFileNode(urls, options)).setName(name)
