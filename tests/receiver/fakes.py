"""Stand-in for `wal` until it lands: an in-memory log with the WAL contract's write/read/read_all/clean.

`clean(before_ms)` drops every record older than `before_ms`, which is the most a real WAL may delete (it
deletes whole segments whose end is before the threshold), so tests that pass here pass on a real WAL too.
"""

from __future__ import annotations

from collections.abc import Iterator


class FakeLog:
    def __init__(self) -> None:
        self.records: list[tuple[int, int, bytes]] = []  # (handle, time_ms, data)
        self.fail_next_writes = 0
        self._next_handle = 0

    def write(self, data: bytes, time_ms: int) -> int:
        if self.fail_next_writes:
            self.fail_next_writes -= 1
            raise OSError("injected write failure")
        handle = self._next_handle
        self._next_handle += 1
        self.records.append((handle, time_ms, bytes(data)))
        return handle

    def read(self, handle: int) -> bytes:
        for h, _, data in self.records:
            if h == handle:
                return data
        raise KeyError(handle)

    def read_all(self) -> Iterator[bytes]:
        return iter([data for _, _, data in self.records])

    def clean(self, before_ms: int, *, wait: bool = False) -> None:
        self.records = [r for r in self.records if r[1] >= before_ms]

    def close(self) -> None:
        pass
