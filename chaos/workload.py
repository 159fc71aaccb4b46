"""The workload: producers of records with unique ids and per-key contiguous sequence numbers.

Each producer is a thread of the runner with its own keys (a key belongs to one producer, so its
sequence numbers are in send order), its own seeded random generator and, for push sources, its own
`PushClient` session per input stream. For every record it writes to the history an "invoke" before the
send and exactly one outcome after it:

- "ok": the send returned, i.e. the receiver acknowledged the frame, which it does only once the block
  is durable (receiver WAL) or, for the file source, the file is published;
- "fail": the receiver refused the frame on its first delivery (`PushRejectedError`, see
  `dstream.client`): those records are never stored;
- "info": the outcome is unknown (`PushError` after its timeout, which keeps the frame and resends it
  first with the same numbers; `PushOutcomeUnknownError`, a refused resend of a frame an earlier
  delivery may have stored; a fenced session; any other error): the records may still arrive once.

Rates and counts are bounded: a producer sends at most `records_max` records, a frame of at most
`frame_records_max`, and waits `pause_s` between frames (on its stop event, so stopping is immediate).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chaos.records import Record
from checkpoint.publish import publish
from dstream.client import ProducerFencedError, PushClient, PushError, PushRejectedError
from dstream.client_addresses import Address

Record_ = Callable[..., Any]  # HistoryWriter.record


@dataclass(frozen=True)
class WorkloadSpec:
    """How much the producers send.

    Attributes:
        producers_n: producer threads.
        keys_per_producer: keys each producer owns.
        records_max: records per producer at most.
        frame_records_max: records per frame (one send) at most.
        pause_s: pause between a producer's frames.
        send_timeout_s: bound on one send, retries included (rides through a driver restart).
    """

    producers_n: int = 3
    keys_per_producer: int = 3
    records_max: int = 100_000
    frame_records_max: int = 5
    pause_s: float = 0.05
    send_timeout_s: float = 30.0


class Producer(threading.Thread):
    """One producer: builds frames of records for its keys and delivers them through `deliver`.

    Subclasses implement `deliver(stream, records)` (return normally once durable, or raise).
    """

    def __init__(
        self, index: int, streams: tuple[str, ...], spec: WorkloadSpec, seed: int, record: Record_
    ) -> None:
        super().__init__(name=f"producer-{index}", daemon=True)
        self.proc = f"producer-{index}"
        self.streams = streams
        self.spec = spec
        self.stop_event = threading.Event()
        self.acked_n = 0
        self.sent_n = 0
        self._rng = random.Random(f"{seed}-producer-{index}")
        self._record = record
        self._keys = [f"p{index}-k{k}" for k in range(spec.keys_per_producer)]
        self._next_seq = dict.fromkeys(self._keys, 1)
        self.error: BaseException | None = None

    def _frame(self) -> tuple[str, list[Record]]:
        stream = self._rng.choice(self.streams)
        records = []
        for _ in range(self._rng.randint(1, self.spec.frame_records_max)):
            key = self._rng.choice(self._keys)
            seq = self._next_seq[key]
            self._next_seq[key] = seq + 1
            value = self._rng.randint(1, 9)
            records.append(Record(f"{key}-{seq}", stream, key, seq, value))
        return stream, records

    def _log(self, type: str, records: list[Record]) -> None:
        for r in records:
            self._record(
                self.proc, "send", type, rid=r.rid, stream=r.stream, key=r.key, seq=r.seq, value=r.value
            )

    def run(self) -> None:
        try:
            while not self.stop_event.is_set() and self.sent_n < self.spec.records_max:
                stream, records = self._frame()
                self.sent_n += len(records)
                self._log("invoke", records)
                self._log(self._outcome(stream, records), records)
                self.stop_event.wait(self.spec.pause_s)
        except BaseException as exc:  # reported by the runner; the thread must not die silently
            self.error = exc
        finally:
            self.close()

    def _outcome(self, stream: str, records: list[Record]) -> str:
        try:
            self.deliver(stream, records)
        except PushRejectedError:  # never stored (dstream.client documents it so)
            return "fail"
        except (PushError, OSError):  # PushOutcomeUnknownError among them: maybe stored
            return "info"
        self.acked_n += len(records)
        return "ok"

    def deliver(self, stream: str, records: list[Record]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (called by the thread when it ends)."""


class PushProducer(Producer):
    """Sends through one `PushClient` session per input stream (producer id `<proc>-<stream>`).

    Each stream's client asks `resolvers[stream]` where the receiver listens before every connection
    (`PushClient(resolver=...)`), so it follows a receiver that moved to another worker; a stream
    without a resolver is sent to 127.0.0.1 at its port in `ports`.
    """

    def __init__(
        self,
        index: int,
        ports: dict[str, int],
        spec: WorkloadSpec,
        seed: int,
        record: Record_,
        resolvers: Mapping[str, Callable[[], Address]] | None = None,
    ) -> None:
        super().__init__(index, tuple(sorted(ports)), spec, seed, record)
        self._ports = ports
        self._resolvers = dict(resolvers or {})
        self._clients: dict[str, PushClient] = {}

    def _client(self, stream: str) -> PushClient:
        client = self._clients.get(stream)
        if client is None:
            resolver = self._resolvers.get(stream)
            where: dict[str, Any] = (
                {"resolver": resolver}
                if resolver is not None
                else {"host": "127.0.0.1", "port": self._ports[stream]}
            )
            client = PushClient(
                producer_id=f"{self.proc}-{stream}",
                timeout_s=self.spec.send_timeout_s,
                backoff_max_s=0.5,
                rng=random.Random(self._rng.random()),
                **where,
            )
            self._clients[stream] = client
        return client

    def deliver(self, stream: str, records: list[Record]) -> None:
        try:
            self._client(stream).send([r.encode() for r in records])
        except ProducerFencedError:
            self._clients.pop(stream).close()  # this session is over: the next frame opens a new one
            raise

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


class FileProducer(Producer):
    """Publishes each frame as one file of JSON lines in the input directory (a replayable source)."""

    def __init__(self, index: int, input_dir: str, spec: WorkloadSpec, seed: int, record: Record_) -> None:
        super().__init__(index, ("a",), spec, seed, record)
        self._input_dir = input_dir.rstrip("/")
        self._files_n = 0

    def deliver(self, stream: str, records: list[Record]) -> None:
        self._files_n += 1
        data = "".join(r.encode() + "\n" for r in records).encode()
        publish(f"{self._input_dir}/{self.proc}-{self._files_n:06d}.jsonl", data)


def start_producers(producers: list[Producer]) -> None:
    for producer in producers:
        producer.start()


def stop_producers(producers: list[Producer], timeout_s: float) -> list[str]:
    """Stop the producers and join them; returns the names of those still running after `timeout_s`."""
    for producer in producers:
        producer.stop_event.set()
    for producer in producers:
        producer.join(timeout_s)
    return [p.name for p in producers if p.is_alive()]
