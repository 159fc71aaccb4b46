"""textFileStream and binaryRecordsStream: new files in a directory, picked by modification time.

Like Spark's FileInputDStream (newFilesOnly): the batch at time T takes the files whose modification
time is in [threshold, T], where threshold = max(the clock when the stream was created, T - remember
window), that it has not taken before. Files whose name starts with "." are skipped (write them under
a dot name and rename them into place). `batch_time_to_files` records which files each batch took
(oldest batches are forgotten after the remember window): the checkpoint issue stores it so that a
re-run batch reads the same files. A file is never taken twice: remembered names cover the window,
older modification times fall below the threshold.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import fsspec

from dstream.errors import DStreamValueError
from dstream.streaming.inputs import InputDStream
from dstream.streaming.listener import StreamInputInfo

# Spark's spark.streaming.fileStream.minRememberDuration: files older than this are never considered.
MIN_REMEMBER_MS = 60_000

Reader = Callable[[str, dict[str, Any]], Iterator[Any]]


def read_text_lines(url: str, storage_options: dict[str, Any]) -> Iterator[str]:
    """The lines of a text file, without their line terminators."""
    with fsspec.open(url, "r", encoding="utf-8", **storage_options) as f:
        for line in f:
            yield line.rstrip("\n")


def binary_records_reader(record_length: int) -> Reader:
    """A reader that cuts each file into `record_length`-byte records."""
    if isinstance(record_length, bool) or not isinstance(record_length, int) or record_length <= 0:
        raise DStreamValueError(f"recordLength must be a positive int (bytes), got {record_length!r}")

    def read(url: str, storage_options: dict[str, Any]) -> Iterator[bytes]:
        with fsspec.open(url, "rb", **storage_options) as f:
            data = f.read()
        if len(data) % record_length:
            raise DStreamValueError(
                f"file {url} has {len(data)} bytes, not a multiple of recordLength {record_length}"
            )
        for start in range(0, len(data), record_length):
            yield data[start : start + record_length]

    return read


def _mtime_ms(entry: dict[str, Any]) -> int | None:
    for key in ("mtime", "LastModified", "last_modified", "created"):
        value = entry.get(key)
        if isinstance(value, datetime):
            return round(value.timestamp() * 1000)
        if isinstance(value, int | float):
            return round(value * 1000)
    return None


class FileInputDStream(InputDStream):
    """New files of a directory, one RDD partition per file, read lazily by the tasks."""

    def __init__(self, ssc: Any, directory: str, reader: Reader, storage_options: dict[str, Any]) -> None:
        if not isinstance(directory, str | os.PathLike) or not os.fspath(directory):
            raise DStreamValueError(
                f"directory must be a non-empty path or fsspec URL (str), got {directory!r}"
            )
        super().__init__(ssc)
        self._directory = str(os.fspath(directory)).rstrip("/")
        self._sc.check_reachable_by_workers(self._directory, "input directory")
        self._reader = reader
        self._storage_options = dict(storage_options)
        self._initial_threshold_ms = ssc.clock.time_ms()
        self._duration_to_remember_ms = self._batch_ms * math.ceil(MIN_REMEMBER_MS / self._batch_ms)
        self._remember_ms = self._duration_to_remember_ms
        self.batch_time_to_files: dict[int, list[str]] = {}
        self._recently_selected: set[str] = set()

    def _list(self) -> list[tuple[str, int]]:
        fs, root = fsspec.core.url_to_fs(self._directory, **self._storage_options)
        found = []
        for entry in fs.ls(root, detail=True):
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry.get("type") == "directory" or name.startswith("."):
                continue
            mtime = _mtime_ms(entry)
            if mtime is None:
                mtime = round(fs.modified(entry["name"]).timestamp() * 1000)
            found.append((fs.unstrip_protocol(entry["name"]), mtime))
        return found

    def select_files(self, time_ms: int) -> list[str]:
        """The files batch `time_ms` takes (and remembers as taken)."""
        threshold = max(self._initial_threshold_ms, time_ms - self._duration_to_remember_ms)
        chosen = sorted(
            url
            for url, mtime in self._list()
            if threshold <= mtime <= time_ms and url not in self._recently_selected
        )
        self.batch_time_to_files[time_ms] = chosen
        self._recently_selected.update(chosen)
        return chosen

    def _compute(self, time_ms: int) -> Any:
        files = self.batch_time_to_files.get(time_ms)
        if files is None:
            files = self.select_files(time_ms)
        if not files:
            return self._sc.emptyRDD()
        reader, options = self._reader, self._storage_options
        return self._sc.parallelize(files, len(files)).flatMap(lambda url: reader(url, options))

    def _input_info(self, time_ms: int) -> StreamInputInfo | None:
        files = self.batch_time_to_files.get(time_ms)
        if files is None:
            return None
        return StreamInputInfo(self._id, 0, {"files": list(files)})

    def _clear_metadata(self, time_ms: int) -> None:
        threshold = time_ms - (self._remember_ms or 0)
        # Strictly older: a file taken at exactly the threshold could otherwise be taken again.
        for t in [t for t in self.batch_time_to_files if t < threshold]:
            self._recently_selected.difference_update(self.batch_time_to_files.pop(t))
        super()._clear_metadata(time_ms)
