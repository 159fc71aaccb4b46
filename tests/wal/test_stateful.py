"""A Hypothesis state machine per backend: the WAL against a plain list model.

Rules: writes (single and batched), reads by handle, read_all, clean, close/reopen (plain or group
commit), and on appendable backends a crash that leaves a torn partial record before reopening.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

import wal
from tests.support.s3servers import StorageTarget
from tests.wal.helpers import data_files, is_appendable, open_log, read_bytes, rewrite
from wal.format import encode_frame
from wal.log import FileBasedWriteAheadLog

ROLLING_MS = 1000


@dataclass
class Entry:
    payload: bytes
    time_ms: int
    handle: wal.RecordHandle


def is_subsequence(small: list[bytes], big: list[bytes]) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def machine_for(base: StorageTarget) -> type[RuleBasedStateMachine]:
    class WALMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.target = base.child(uuid.uuid4().hex[:10])
            self.model: list[Entry] = []
            self.gone: list[wal.RecordHandle] = []
            self.now_ms = 10_000
            self.log: wal.WriteAheadLog = self._open(batched=False)

        def _open(self, batched: bool) -> wal.WriteAheadLog:
            # fsync is not what this machine checks (the SIGKILL test does); it only slows local disk.
            return open_log(self.target, rolling_interval_ms=ROLLING_MS, batched=batched, fsync="never")

        def _plain(self) -> FileBasedWriteAheadLog:
            log = self.log
            inner = getattr(log, "_wrapped", log)
            assert isinstance(inner, FileBasedWriteAheadLog)
            return inner

        @rule(payload=st.binary(max_size=300), step_ms=st.integers(-200, 1500))
        def write(self, payload: bytes, step_ms: int) -> None:
            self.now_ms = max(0, self.now_ms + step_ms)
            self.model.append(Entry(payload, self.now_ms, self.log.write(payload, self.now_ms)))

        @rule(payloads=st.lists(st.binary(max_size=100), min_size=1, max_size=5), step_ms=st.integers(0, 900))
        def write_batch(self, payloads: list[bytes], step_ms: int) -> None:
            times = [self.now_ms + step_ms * i // len(payloads) for i in range(len(payloads))]
            self.now_ms = times[-1]
            handles = self._plain().write_batch(list(zip(payloads, times, strict=True)))
            self.model += [Entry(p, t, h) for p, t, h in zip(payloads, times, handles, strict=True)]

        @precondition(lambda self: bool(self.model))
        @rule(data=st.data())
        def read_one(self, data: st.DataObject) -> None:
            entry = data.draw(st.sampled_from(self.model))
            assert self.log.read(entry.handle) == entry.payload

        @rule()
        def read_all(self) -> None:
            assert list(self.log.read_all()) == [e.payload for e in self.model]

        @rule(back_ms=st.integers(0, 4000))
        def clean(self, back_ms: int) -> None:
            before = self.now_ms - back_ms
            self.log.clean(before, wait=True)
            kept = list(self.log.read_all())
            assert is_subsequence(kept, [e.payload for e in self.model])
            kept_handles = {e.handle for e in self.model}
            survivors = [e for e in self.model if self._still_there(e)]
            assert [e.payload for e in survivors] == kept
            assert all(e.time_ms < before for e in self.model if e not in survivors)
            self.gone += [e.handle for e in self.model if e not in survivors]
            self.model = survivors
            assert kept_handles >= {e.handle for e in survivors}

        def _still_there(self, entry: Entry) -> bool:
            try:
                return self.log.read(entry.handle) == entry.payload
            except wal.RecordNotFoundError:
                return False

        @precondition(lambda self: bool(self.gone))
        @rule()
        def cleaned_handles_are_gone(self) -> None:
            with pytest.raises(wal.RecordNotFoundError):
                self.log.read(self.gone[-1])

        @rule(batched=st.booleans())
        def reopen(self, batched: bool) -> None:
            self.log.close()
            self.log = self._open(batched)

        @precondition(lambda self: is_appendable(self.target) and bool(self.model))
        @rule(payload=st.binary(min_size=1, max_size=50), cut=st.integers(1, 69))
        def crash_leaving_a_torn_record(self, payload: bytes, cut: int) -> None:
            # A crash can only cut an append of a writer, which has recovered the tail before writing.
            self.write(b"acknowledged before the crash", 0)
            self.log.close()
            last = data_files(self.target)[-1]
            frame = encode_frame(payload, self.now_ms)
            rewrite(self.target, last, read_bytes(self.target, last) + frame[: min(cut, len(frame) - 1)])
            self.log = self._open(batched=False)

        def teardown(self) -> None:
            self.log.close()

    return WALMachine


def test_wal_behaves_like_a_list(storage: StorageTarget) -> None:
    small = storage.kind.startswith("s3")
    run_state_machine_as_test(
        machine_for(storage),
        settings=settings(
            max_examples=4 if small else 30,
            stateful_step_count=12 if small else 30,
            deadline=None,
        ),
    )
