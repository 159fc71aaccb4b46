"""The WAL contract (`WriteAheadLog`, `RecordHandle`) and the segmented implementation over a backend.

`FileBasedWriteAheadLog` keeps Spark's five-method contract with its rules: records go to the open
segment until a record is later than its end (then a new segment starts), `clean` drops whole segments
whose end is strictly before the threshold and never the open one, `read_all` is lazy and in write
order. What it adds: checksummed frames, torn-tail recovery before the first write (then always a new
segment; after a failed append whose bytes could not be cut back, the next write cuts them back first,
so a failed rollback costs writes only until the cut succeeds), fsync policy, `write_batch`
(several records, one physical commit) used by group commit, and, when opened with a key, a MAC on
every record that `read` and `read_all` verify before a payload is returned (`wal.auth`,
`wal.format`). Without a key the append path is the same as before keys existed: one `is None` test
per commit.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from types import TracebackType

from wal import recovery
from wal.auth import RecordAuthenticator, RecordKey, authenticator_for
from wal.backends import SegmentWriteError, SegmentWriter, WALBackend
from wal.errors import (
    CorruptRecordError,
    RecordAuthenticationError,
    RecordNotFoundError,
    WALClosedError,
    WALError,
    WALValueError,
)
from wal.format import (
    AUTH_FRAME_HEADER_BYTES,
    FRAME_HEADER_BYTES,
    RECORD_BYTES_MAX,
    Damage,
    DamageKind,
    FileHeader,
    Frame,
    authentication_damage,
    decode_frame,
    encode_file_header,
    encode_frame_header,
    frame_length,
    read_file_header,
)
from wal.reading import LogFile, iter_valid_frames
from wal.segments import (
    SegmentName,
    cleanable,
    must_roll,
    next_segment,
    parse_object,
    parse_segment,
    sorted_segments,
)
from wal.stats import WALStatistics
from wal.transient_errors import TransientRetries, retry_transient

log = logging.getLogger(__name__)

TIME_MS_MAX = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class LogFileRef:
    """One file of the log as `read_all` found it: its segment, path, and whether its tail may be torn."""

    segment: SegmentName
    path: str
    tail: bool


@dataclass(frozen=True, slots=True)
class RecordHandle:
    """Where one record lives: file path relative to the log root, frame offset, payload length."""

    path: str
    offset: int
    length: int


class WriteAheadLog(ABC):
    """Spark's WAL contract: durable `write`, `read` by handle, `read_all`, time-based `clean`."""

    @abstractmethod
    def write(self, data: bytes, time_ms: int) -> RecordHandle:
        """Append one record; when this returns it is durable per the log's fsync policy."""

    @abstractmethod
    def read(self, handle: RecordHandle) -> bytes:
        """The record at `handle`, verified by CRC and length.

        Raises:
            RecordNotFoundError: the file is gone (cleaned), or the handle matches no record there
                (past the end of the file, or a length other than the frame's).
            CorruptRecordError: the bytes at the handle fail the format's checks.
        """

    @abstractmethod
    def read_all(self) -> Iterator[bytes]:
        """Every record not cleaned, in write order (lazy)."""

    @abstractmethod
    def clean(self, before_ms: int, *, wait: bool = False) -> None:
        """Delete whole segments whose every record is older than `before_ms`."""

    @abstractmethod
    def close(self) -> None:
        """Release resources; idempotent."""

    @abstractmethod
    def statistics(self) -> WALStatistics:
        """A snapshot of this handle's counters."""

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def check_record(data: object, time_ms: object) -> None:
    """Raise WALValueError unless `data` is bytes-like within limits and `time_ms` a non-negative int."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WALValueError(f"data must be bytes, got {type(data).__name__}")
    if len(data) > RECORD_BYTES_MAX:
        raise WALValueError(f"record of {len(data)} bytes exceeds RECORD_BYTES_MAX={RECORD_BYTES_MAX}")
    if isinstance(time_ms, bool) or not isinstance(time_ms, int) or not 0 <= time_ms <= TIME_MS_MAX:
        raise WALValueError(f"time_ms must be an int in [0, 2**63), got {time_ms!r}")


def check_handle(handle: object) -> RecordHandle:
    """The handle, if it is a well-formed RecordHandle pointing inside a log (no path escapes)."""
    if not isinstance(handle, RecordHandle):
        raise WALValueError(f"expected a RecordHandle, got {handle!r}")
    parts = handle.path.split("/")
    well_formed = (
        parse_segment(parts[0]) is not None
        and len(parts) <= 2
        and (len(parts) == 1 or parse_object(parts[1]) is not None)
        and handle.offset >= 0
        and 0 <= handle.length <= RECORD_BYTES_MAX
    )
    if not well_formed:
        raise WALValueError(f"malformed record handle {handle!r}")
    return handle


class FileBasedWriteAheadLog(WriteAheadLog):
    """A segmented WAL on one backend (local, memory or object store); one writer per log."""

    def __init__(
        self,
        backend: WALBackend,
        *,
        rolling_interval_ms: int = 60_000,
        repair: bool = False,
        key: RecordKey | RecordAuthenticator | None = None,
    ) -> None:
        if isinstance(rolling_interval_ms, bool) or not isinstance(rolling_interval_ms, int):
            raise WALValueError(f"rolling_interval_ms must be an int, got {rolling_interval_ms!r}")
        if rolling_interval_ms <= 0:
            raise WALValueError(f"rolling_interval_ms must be > 0, got {rolling_interval_ms}")
        self._backend = backend
        self._rolling_interval_ms = rolling_interval_ms
        self._auth = authenticator_for(key)
        self._file_header = encode_file_header(None if self._auth is None else self._auth.key_id)
        self._frame_header_bytes = FRAME_HEADER_BYTES if self._auth is None else AUTH_FRAME_HEADER_BYTES
        self._lock = threading.Lock()
        self._closed = False
        self._recovered = False
        self._cut_back: tuple[SegmentName | None, int | None] | None = None  # after a failed rollback
        self._last: SegmentName | None = None
        self._current: SegmentName | None = None
        self._writer: SegmentWriter | None = None
        self._cleaner: ThreadPoolExecutor | None = None
        self._stats = WALStatistics()
        if repair:
            drops = recovery.repair(backend)
            self._stats = replace(self._stats, dropped=tuple(drops))
            for drop in drops:
                log.warning("WAL repair dropped %d bytes of %s at %d: %s", drop.bytes_dropped, drop.path,
                            drop.offset, drop.reason)  # fmt: skip

    @property
    def backend(self) -> WALBackend:
        """The storage backend (for inspection tools)."""
        return self._backend

    @property
    def key_id(self) -> str | None:
        """The id of the key records are authenticated with, or None."""
        return None if self._auth is None else self._auth.key_id

    def write(self, data: bytes, time_ms: int) -> RecordHandle:
        return self.write_batch([(data, time_ms)])[0]

    def write_batch(self, records: Sequence[tuple[bytes, int]]) -> list[RecordHandle]:
        """Append several records with one physical commit (one append + fsync, or one object).

        The batch goes to the segment chosen by its newest record time, so `clean` never drops a
        record newer than its threshold. Returns one handle per record, in order.
        """
        if not records:
            return []
        for data, time_ms in records:
            check_record(data, time_ms)
        with self._lock:
            self._check_writable()
            if self._cut_back is not None:
                self._finish_cut_back(*self._cut_back)
            if not self._recovered:
                self._recover()
            times = [time_ms for _, time_ms in records]
            min_ms, max_ms = min(times), max(times)
            if must_roll(self._current, max_ms) or self._writer is None:
                self._roll(min_ms, max_ms)
            return self._append(records, min_ms, max_ms)

    def _check_writable(self) -> None:
        if self._closed:
            raise WALClosedError(f"write to {self._backend.describe()} after close()")

    def _finish_cut_back(self, segment: SegmentName | None, size: int | None) -> None:
        # What the failed append's own rollback could not do: the file back to its last good length.
        if segment is None or size is None:  # a backend that cannot say: recover as a reopen does
            self._recovered = False
        else:
            try:
                self._backend.truncate_file(str(segment), size)
            except FileNotFoundError:
                pass  # cleaned meanwhile: nothing of it is left to cut
            except OSError as exc:
                raise WALError(
                    f"cannot cut {segment} of {self._backend.url} back after a failed append: {exc}"
                ) from exc
        self._cut_back = None

    def _recover(self) -> None:
        try:
            self._last, drops = recovery.recover_for_writing(self._backend)
        except OSError as exc:  # like every other failed write: a WALError, and the next write retries
            raise WALError(f"cannot recover {self._backend.url} for writing: {exc}") from exc
        for drop in drops:
            log.warning("WAL dropped a torn tail of %d bytes from %s at %d", drop.bytes_dropped,
                        drop.path, drop.offset)  # fmt: skip
        self._stats = replace(self._stats, dropped=self._stats.dropped + tuple(drops))
        self._recovered = True

    def _roll(self, min_ms: int, max_ms: int) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        name = next_segment(self._last, min_ms, max_ms, self._rolling_interval_ms)
        self._last = name  # even on failure: a half-created segment's name is never reused
        try:
            self._writer = self._backend.open_segment(str(name), self._file_header)
        except FileExistsError as exc:
            raise WALError(f"segment {name} of {self._backend.url} exists: another writer?") from exc
        except OSError as exc:
            raise WALError(f"cannot create segment {name} in {self._backend.url}: {exc}") from exc
        self._current = name
        self._stats = replace(self._stats, segments_created=self._stats.segments_created + 1)

    def _append(self, records: Sequence[tuple[bytes, int]], min_ms: int, max_ms: int) -> list[RecordHandle]:
        assert self._writer is not None
        buffers: list[bytes | memoryview] = []
        auth = self._auth
        if auth is None:
            for data, time_ms in records:
                buffers += [encode_frame_header(data, time_ms), data]
        else:
            for data, time_ms in records:
                buffers += [encode_frame_header(data, time_ms, auth), data]
        try:
            path, offset = self._writer.append(buffers, min_ms, max_ms)
        except SegmentWriteError as exc:
            # Never append after a failed write: the next write starts a new segment. If the partial
            # bytes could not be cut off, the next write first cuts the file back to its length before
            # the failed append (so a record reported as failed is never left whole in the log) and
            # fails, appending nothing, while that cut fails: the log is never wedged, and never
            # appends after a torn frame.
            self._writer.close()
            self._writer = None
            if not exc.rolled_back:
                self._cut_back = (self._current, exc.good_size)
            raise
        handles = []
        header_bytes = self._frame_header_bytes
        for data, _ in records:
            handles.append(RecordHandle(path, offset, len(data)))
            offset += header_bytes + len(data)
        self._stats = replace(
            self._stats,
            records_written=self._stats.records_written + len(records),
            payload_bytes_written=self._stats.payload_bytes_written + sum(len(d) for d, _ in records),
            commits=self._stats.commits + 1,
        )
        return handles

    def read(self, handle: RecordHandle) -> bytes:
        check_handle(handle)
        header_bytes = self._frame_header_bytes
        buf = self._read_frame_bytes(handle, header_bytes)
        item = decode_frame(buf, 0, header_bytes, self._auth)
        if isinstance(item, Damage) or len(item.payload) != handle.length:
            # The fast path assumed the layout this log writes; the file's own header decides.
            file_header = self._file_header_of(handle)
            refused = None if self._auth is None else authentication_damage(file_header, self._auth)
            if refused is None and isinstance(item, Damage) and item.kind is DamageKind.UNAUTHENTICATED:
                refused = item
            if refused is not None:
                url = self._backend.url
                raise RecordAuthenticationError(handle.path, handle.offset, refused.reason, url)
            if file_header.frame_header_bytes != header_bytes:  # a keyless reader of a keyed file
                header_bytes = file_header.frame_header_bytes
                buf = self._read_frame_bytes(handle, header_bytes)
                item = decode_frame(buf, 0, header_bytes)
        if isinstance(item, Damage) or len(item.payload) != handle.length:
            raise self._read_error(handle, buf, item, header_bytes)
        return bytes(item.payload)

    def _read_frame_bytes(self, handle: RecordHandle, header_bytes: int) -> bytes:
        try:
            return self._backend.read_range(handle.path, handle.offset, header_bytes + handle.length)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise RecordNotFoundError(f"no WAL file {handle.path!r} in {self._backend.url}") from exc
        except OSError:  # object stores refuse a range that starts past the end (S3: InvalidRange)
            if handle.offset < self._backend.file_size(handle.path):
                raise
            return b""

    def _file_header_of(self, handle: RecordHandle) -> FileHeader:
        """The header of the file `handle` points into (to explain a frame that did not decode)."""
        try:
            with self._backend.open_file(handle.path) as source:
                header = read_file_header(source)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise RecordNotFoundError(f"no WAL file {handle.path!r} in {self._backend.url}") from exc
        if isinstance(header, Damage):
            raise CorruptRecordError(handle.path, header.offset, header.reason)
        return header

    def _read_error(
        self, handle: RecordHandle, buf: bytes, item: Frame | Damage, header_bytes: int
    ) -> WALError:
        """Why `buf` is not the record `handle` names: a handle that matches no record, or corruption."""
        declared = frame_length(buf[:header_bytes], header_bytes)
        if declared is not None and declared != handle.length:
            return RecordNotFoundError(
                f"no record of length {handle.length} at {handle!r}: the frame there holds {declared} bytes"
            )
        if len(buf) < header_bytes + handle.length:
            try:
                size: int | str = self._backend.file_size(handle.path)
            except OSError:
                size = "unknown"
            end = handle.offset + header_bytes + handle.length
            return RecordNotFoundError(
                f"{handle!r} points past the end of the file: the record would end at byte {end}, "
                f"the file holds {size} bytes"
            )
        reason = item.reason if isinstance(item, Damage) else "length mismatch"
        return CorruptRecordError(handle.path, handle.offset, reason)

    def read_all(self) -> Iterator[bytes]:
        """Every record in write order (lazily); transient storage errors are retried.

        The listings are retried as a whole; a file whose read fails is opened again and read on from
        the record after the last one returned (`wal.transient_errors`: a few attempts in a row, with
        back-off; an attempt that returned a new record starts a new run of attempts).
        """
        backend = self._backend
        what = f"the WAL at {backend.url}"
        segments = sorted_segments(retry_transient(backend.list_segments, what))
        retries = TransientRetries(what)
        for index, segment in enumerate(segments):
            try:
                paths = retry_transient(partial(backend.list_files, str(segment)), what)
            except FileNotFoundError:
                continue
            tail = backend.appendable and index == len(segments) - 1
            for path in paths:
                yield from self._read_file(LogFileRef(segment, path, tail), retries)

    def _read_file(self, ref: LogFileRef, retries: TransientRetries) -> Iterator[bytes]:
        backend, done = self._backend, 0
        # Ends: each pass returns, raises, or returns a new record (bounded by the file's records)
        # before it may fail again; failures in a row are bounded by the retries' budget.
        while True:
            try:
                with backend.open_file(ref.path) as source:
                    log_file = LogFile(ref.segment, ref.path, source, ref.tail, backend.appendable)
                    for index, frame in enumerate(iter_valid_frames(log_file, self._auth)):
                        if index >= done:
                            done += 1
                            retries.progressed()
                            yield bytes(frame.payload)
                return
            except FileNotFoundError:  # cleaned while we walked: nothing to read there any more
                return
            except RecordAuthenticationError as exc:  # name the log too: several logs share segment names
                raise RecordAuthenticationError(exc.segment, exc.offset, exc.reason, backend.url) from None
            except OSError as exc:
                retries.failed(exc)

    def clean(self, before_ms: int, *, wait: bool = False) -> None:
        if isinstance(before_ms, bool) or not isinstance(before_ms, int):
            raise WALValueError(f"before_ms must be an int, got {before_ms!r}")
        with self._lock:
            if self._closed:
                raise WALClosedError(f"clean() on {self._backend.describe()} after close()")
            open_seq = self._current.seq if self._writer is not None and self._current else None
            doomed = cleanable(sorted_segments(self._backend.list_segments()), before_ms, open_seq)
            if not doomed:
                return
            if self._cleaner is None:
                self._cleaner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-clean")
            future: Future[None] = self._cleaner.submit(self._delete, doomed)
        if wait:
            future.result()

    def _delete(self, segments: list[SegmentName]) -> None:
        """Best effort, like Spark: a segment left behind is only replayed again, never wrong."""
        for segment in segments:
            try:
                self._backend.delete_segment(str(segment))
                ok = 1
            except Exception as exc:
                log.warning("WAL could not delete segment %s of %s: %s", segment, self._backend.url, exc)
                ok = 0
            with self._lock:
                self._stats = replace(
                    self._stats,
                    segments_deleted=self._stats.segments_deleted + ok,
                    delete_failures=self._stats.delete_failures + 1 - ok,
                )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            cleaner, self._cleaner = self._cleaner, None
        if cleaner is not None:
            cleaner.shutdown(wait=True)

    def statistics(self) -> WALStatistics:
        with self._lock:
            return self._stats
