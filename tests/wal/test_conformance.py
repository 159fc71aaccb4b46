"""The WAL contract, run against every backend (local, memory, S3 on moto, S3 on SeaweedFS)."""

from __future__ import annotations

import dataclasses
import pickle
import threading

import pytest

import wal
from tests.support.s3servers import StorageTarget
from tests.wal.helpers import data_files, flip_bit, is_appendable, open_log, read_bytes, rewrite
from wal.segments import parse_segment

PAYLOADS = [f"record-{i}".encode() * (i % 4 + 1) for i in range(12)]
TIMES = [10_000 + 500 * i for i in range(12)]  # 1 s rolling interval: several segments


def write_all(log: wal.WriteAheadLog) -> list[wal.RecordHandle]:
    return [log.write(data, t) for data, t in zip(PAYLOADS, TIMES, strict=True)]


def test_write_returns_handles_that_read_back(storage: StorageTarget) -> None:
    with open_log(storage, rolling_interval_ms=1000) as log:
        handles = write_all(log)
        assert [log.read(h) for h in handles] == PAYLOADS
        assert list(log.read_all()) == PAYLOADS


def test_reopened_log_reads_everything_in_write_order(storage: StorageTarget) -> None:
    with open_log(storage, rolling_interval_ms=1000) as log:
        write_all(log)
    with open_log(storage, rolling_interval_ms=1000) as log:
        assert list(log.read_all()) == PAYLOADS
        log.write(b"after-reopen", 1)  # an earlier time still lands after, in write order
        assert list(log.read_all()) == [*PAYLOADS, b"after-reopen"]


def test_segments_roll_by_time_and_names_bound_their_records(storage: StorageTarget) -> None:
    with open_log(storage, rolling_interval_ms=1000) as log:
        handles = write_all(log)
    segments = {h.path.split("/")[0] for h in handles}
    assert len(segments) > 1
    for handle, t in zip(handles, TIMES, strict=True):
        name = parse_segment(handle.path.split("/")[0])
        assert name is not None and name.start_ms <= t <= name.end_ms


def test_open_and_read_create_nothing(storage: StorageTarget) -> None:
    fs = storage.filesystem()
    log = open_log(storage)
    assert list(log.read_all()) == []
    handle = wal.RecordHandle("log-0000000000-1-2", 16, 3)
    with pytest.raises(wal.RecordNotFoundError):
        log.read(handle)
    log.clean(10**12, wait=True)
    log.close()
    fs.invalidate_cache()
    assert not fs.exists(storage.url)


def test_handles_are_small_picklable_and_work_in_a_fresh_log(storage: StorageTarget) -> None:
    with open_log(storage, rolling_interval_ms=1000) as log:
        handles = write_all(log)
    revived = pickle.loads(pickle.dumps(handles))
    assert all(len(pickle.dumps(h)) < 200 for h in handles)
    with open_log(storage) as reader:
        assert [reader.read(h) for h in reversed(revived)] == PAYLOADS[::-1]


def test_clean_deletes_only_segments_entirely_older(storage: StorageTarget) -> None:
    with open_log(storage, rolling_interval_ms=1000) as log:
        handles = write_all(log)
        threshold = TIMES[6]
        log.clean(threshold, wait=True)
        kept = list(log.read_all())
        # Every record at or after the threshold survives, and what survives is a suffix.
        assert kept == PAYLOADS[len(PAYLOADS) - len(kept) :]
        assert len(kept) < len(PAYLOADS)
        assert all(p in kept for p, t in zip(PAYLOADS, TIMES, strict=True) if t >= threshold)
        dropped = handles[: len(PAYLOADS) - len(kept)]
        for handle in dropped:
            name = parse_segment(handle.path.split("/")[0])
            assert name is not None and name.end_ms < threshold
            with pytest.raises(wal.RecordNotFoundError):
                log.read(handle)
        assert log.statistics().segments_deleted >= 1


def test_clean_never_deletes_the_open_segment(storage: StorageTarget) -> None:
    with open_log(storage, rolling_interval_ms=1000) as log:
        log.write(b"only", 5)
        log.clean(10**12, wait=True)
        assert list(log.read_all()) == [b"only"]


def test_asynchronous_clean_completes_by_close(storage: StorageTarget) -> None:
    log = open_log(storage, rolling_interval_ms=1000)
    write_all(log)
    log.clean(10**12)
    log.close()
    with open_log(storage) as reader:
        kept = list(reader.read_all())
    assert kept == PAYLOADS[-len(kept) :] and len(kept) < len(PAYLOADS)


def test_close_is_idempotent_and_write_after_close_raises(storage: StorageTarget) -> None:
    log = open_log(storage)
    log.write(b"a", 1)
    log.close()
    log.close()
    with pytest.raises(wal.WALClosedError):
        log.write(b"b", 2)


def test_bad_arguments_name_the_value(storage: StorageTarget) -> None:
    with open_log(storage) as log:
        with pytest.raises(wal.WALValueError, match="-1"):
            log.write(b"x", -1)
        with pytest.raises(ValueError, match="str"):
            log.write("text", 1)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="RecordHandle"):
            log.read(("log-0000000000-1-2", 0, 1))  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="malformed"):
            log.read(wal.RecordHandle("../etc/passwd", 0, 1))
    with pytest.raises(ValueError, match="'sometimes'"):
        open_log(storage, fsync="sometimes")


def test_a_handle_that_matches_no_record_is_not_found_never_corrupt(storage: StorageTarget) -> None:
    with open_log(storage, rolling_interval_ms=10**9) as log:
        handles = write_all(log)
        last = handles[-1]
        file_bytes = last.offset + 20 + last.length
        past_end = dataclasses.replace(last, offset=file_bytes + 1000)
        with pytest.raises(wal.RecordNotFoundError, match=f"past the end.* holds {file_bytes} bytes"):
            log.read(past_end)
        for handle in (handles[3], last):
            for wrong in (handle.length - 1, handle.length + 1):
                expected = f"no record of length {wrong} .* holds {handle.length} bytes"
                with pytest.raises(wal.RecordNotFoundError, match=expected):
                    log.read(dataclasses.replace(handle, length=wrong))


def test_a_flipped_bit_in_a_middle_record_raises_naming_file_and_offset(storage: StorageTarget) -> None:
    with open_log(storage, rolling_interval_ms=10**9) as log:
        handles = write_all(log)
    target = handles[3]
    path = next(p for p in data_files(storage) if p.endswith(target.path))
    flip_bit(storage, path, (target.offset + 25) * 8)  # inside the payload
    with open_log(storage) as log:
        with pytest.raises(wal.CorruptRecordError) as info:
            list(log.read_all())
        assert info.value.segment == target.path and info.value.offset == target.offset
        with pytest.raises(wal.CorruptRecordError):
            log.read(target)
        assert log.read(handles[2]) == PAYLOADS[2]


def test_repair_cuts_at_the_corruption_and_reports_it(storage: StorageTarget) -> None:
    with open_log(storage, rolling_interval_ms=10**9) as log:
        handles = write_all(log)
    target = handles[5]
    path = next(p for p in data_files(storage) if p.endswith(target.path))
    flip_bit(storage, path, (target.offset + 2) * 8)  # header CRC
    with open_log(storage, repair=True) as log:
        drops = log.statistics().dropped
        survivors = list(log.read_all())
    assert [d.path for d in drops][:1] == [target.path]
    assert drops[0].offset in (target.offset, 0)  # objects are dropped whole
    assert survivors == PAYLOADS[:5]
    with open_log(storage) as log:
        log.write(b"after-repair", 10**6)
        assert list(log.read_all()) == [*PAYLOADS[:5], b"after-repair"]


@pytest.mark.parametrize("cut", [1, 21])
def test_a_crash_cut_last_record_is_a_torn_tail_or_corruption_by_backend(
    storage: StorageTarget, cut: int
) -> None:
    with open_log(storage, rolling_interval_ms=10**9) as log:
        write_all(log)
    path = data_files(storage)[-1]
    content = read_bytes(storage, path)
    rewrite(storage, path, content[:-cut])
    if not is_appendable(storage):  # a put is atomic: a short object is damage, never a crash
        with open_log(storage) as log, pytest.raises(wal.CorruptRecordError):
            list(log.read_all())
        return
    with open_log(storage) as log:
        assert list(log.read_all()) == PAYLOADS[:-1]
        log.write(b"next", 10**6)
        assert log.statistics().dropped[0].bytes_dropped == len(PAYLOADS[-1]) + 20 - cut
    with open_log(storage) as log:
        assert list(log.read_all()) == [*PAYLOADS[:-1], b"next"]


def power_cut(storage: StorageTarget, path: str, payload_bytes: int) -> None:
    """Zero the final frame's payload: its header and the file size landed, its data pages did not."""
    content = read_bytes(storage, path)
    rewrite(storage, path, content[:-payload_bytes] + bytes(payload_bytes))


def test_a_power_cut_payload_at_the_end_of_the_last_segment_is_a_torn_tail(storage: StorageTarget) -> None:
    with open_log(storage, rolling_interval_ms=10**9) as log:
        write_all(log)
    power_cut(storage, data_files(storage)[-1], len(PAYLOADS[-1]))
    if not is_appendable(storage):  # a put is atomic: a bad object is damage, never a crash
        with open_log(storage) as log, pytest.raises(wal.CorruptRecordError, match="payload CRC"):
            list(log.read_all())
        return
    with open_log(storage) as log:
        assert list(log.read_all()) == PAYLOADS[:-1]
        log.write(b"next", 10**6)
        assert log.statistics().dropped[0].bytes_dropped == len(PAYLOADS[-1]) + 20
    with open_log(storage) as log:
        assert list(log.read_all()) == [*PAYLOADS[:-1], b"next"]


def test_a_power_cut_payload_in_an_earlier_segment_is_corruption(storage: StorageTarget) -> None:
    with open_log(storage, rolling_interval_ms=1000) as log:
        handles = write_all(log)
    first_segment = handles[0].path.split("/")[0]
    victim = [p for p in data_files(storage) if first_segment in p][-1]
    assert victim != data_files(storage)[-1]
    last_in_victim = [h for h in handles if h.path.split("/")[0] == first_segment][-1]
    power_cut(storage, victim, last_in_victim.length)
    with open_log(storage) as log, pytest.raises(wal.CorruptRecordError, match="payload CRC"):
        list(log.read_all())


def test_batched_log_group_commits_concurrent_writers(storage: StorageTarget) -> None:
    log = open_log(storage, batched=True, rolling_interval_ms=1000)
    results: dict[tuple[int, int], wal.RecordHandle] = {}
    lock = threading.Lock()

    def writer(thread: int) -> None:
        for i in range(10):
            handle = log.write(f"{thread}:{i}".encode(), 1000 + i)
            with lock:
                results[(thread, i)] = handle

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 60
    for (thread, i), handle in results.items():
        assert log.read(handle) == f"{thread}:{i}".encode()
    everything = list(log.read_all())
    for thread in range(6):  # each thread's records appear in its own order
        mine = [r for r in everything if r.startswith(f"{thread}:".encode())]
        assert mine == [f"{thread}:{i}".encode() for i in range(10)]
    stats = log.statistics()
    log.close()
    assert stats.records_written == 60 and stats.commits == stats.batches_committed <= 60
    with pytest.raises(wal.WALClosedError):
        log.write(b"late", 1)
