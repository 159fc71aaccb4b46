"""The chaos history format: golden file, refusal of other formats and versions, torn tails, merge, writer."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from chaos.checker.liveness import faults_of
from chaos.errors import ChaosError, ChaosValueError, HistoryFormatError
from chaos.history import (
    FORMAT,
    FORMAT_VERSION,
    HistoryWriter,
    merge_histories,
    parse_history,
    part_header,
    read_history,
    run_header,
    write_history,
)

GOLDEN = Path(__file__).parent / "golden"

RUN = {
    "pipeline": "stateful",
    "sink": "transactional",
    "master": "local[2]",
    "checkpoint": "file:///tmp/drill/ckpt",
    "batch_ms": 500,
    "window_ms": None,
    "slide_ms": None,
    "faults": ["driver-kill"],
    "recovery_bound_s": 30.0,
}


def _send(t: float, kind: str, rid: str, key: str, seq: int, value: int) -> dict[str, object]:
    return {
        "t": t,
        "proc": "producer-0",
        "f": "send",
        "type": kind,
        "rid": rid,
        "stream": "a",
        "key": key,
        "seq": seq,
        "value": value,
    }


GOLDEN_EVENTS: list[dict[str, object]] = [
    {"t": 0.01, "proc": "driver-0", "f": "driver-started", "type": "info"},
    _send(0.1, "invoke", "p0-1", "k0", 1, 5),
    _send(0.12, "ok", "p0-1", "k0", 1, 5),
    _send(0.2, "invoke", "p0-2", "k0", 2, 7),
    _send(0.25, "info", "p0-2", "k0", 2, 7),
    _send(0.3, "invoke", "p0-3", "k1", 1, 3),
    _send(0.31, "fail", "p0-3", "k1", 1, 3),
    {"t": 0.5, "proc": "driver-0", "f": "batch-completed", "type": "info", "batch": 500},
    {"t": 0.6, "proc": "driver-0", "f": "checkpoint-completed", "type": "info"},
    {
        "t": 1.0,
        "proc": "nemesis",
        "f": "fault-start",
        "type": "info",
        "fault": "driver-kill",
        "target": "driver-0",
        "pid": 4242,
        "detail": {"signal": "KILL"},
    },
    {
        "t": 1.01,
        "proc": "nemesis",
        "f": "fault-end",
        "type": "info",
        "fault": "driver-kill",
        "target": "driver-0",
        "pid": 4242,
        "detail": {},
    },
    {"t": 1.2, "proc": "driver-1", "f": "driver-started", "type": "info"},
    {"t": 1.3, "proc": "driver-1", "f": "recovery-started", "type": "info"},
    {"t": 1.8, "proc": "driver-1", "f": "recovery-done", "type": "info"},
    {"t": 2.0, "proc": "driver-1", "f": "batch-completed", "type": "info", "batch": 1000},
    {"t": 2.1, "proc": "probe", "f": "healthy", "type": "ok"},
    {"t": 3.0, "proc": "runner", "f": "drained", "type": "info"},
]


# What version 2 added: failed output operations and records per batch, fencing, worker and receiver
# placement, and the zombie-pause fault (chaos/history.py, "Versions").
GOLDEN_V2_EVENTS: list[dict[str, object]] = [
    {"t": 0.01, "proc": "driver-0", "f": "driver-started", "type": "info"},
    {"t": 0.02, "proc": "driver-0", "f": "workers", "type": "info", "pids": {"tcp://127.0.0.1:4001": 51}},
    {"t": 0.03, "proc": "driver-0", "f": "receiver-started", "type": "info", "stream": 0,
     "location": "tcp://127.0.0.1:4001"},
    {"t": 0.04, "proc": "driver-0", "f": "receivers", "type": "info",
     "addresses": {"a": ["127.0.0.1", 4100]}},
    _send(0.1, "invoke", "p0-1", "k0", 1, 5),
    _send(0.12, "ok", "p0-1", "k0", 1, 5),
    {"t": 0.5, "proc": "driver-0", "f": "batch-completed", "type": "info", "batch": 500, "records": 1,
     "failed": 1},
    {"t": 1.0, "proc": "nemesis", "f": "fault-start", "type": "info", "fault": "zombie-pause",
     "target": "driver-0", "pid": 4242, "detail": {"pause_s": 12.0}},
    {"t": 1.2, "proc": "driver-1", "f": "driver-started", "type": "info"},
    {"t": 2.0, "proc": "driver-1", "f": "batch-completed", "type": "info", "batch": 1000, "records": 0,
     "failed": 0},
    {"t": 13.0, "proc": "driver-0", "f": "driver-fenced", "type": "info"},
    {"t": 13.1, "proc": "nemesis", "f": "fault-end", "type": "info", "fault": "zombie-pause",
     "target": "driver-0", "pid": 4242, "detail": {}},
    {"t": 14.0, "proc": "runner", "f": "drained", "type": "info"},
]  # fmt: skip


def test_golden_v2_history_is_what_the_writer_writes(tmp_path: Path) -> None:
    out = tmp_path / "h.jsonl"
    write_history(out, run_header(7, {**RUN, "faults": ["zombie-pause"]}), GOLDEN_V2_EVENTS)
    assert out.read_bytes() == (GOLDEN / "history-v2.jsonl").read_bytes()


def test_golden_v2_history_reads_back() -> None:
    history = read_history(GOLDEN / "history-v2.jsonl")
    assert history.header["format"] == FORMAT and history.header["version"] == FORMAT_VERSION == 2
    assert history.seed == 7 and history.run == {**RUN, "faults": ["zombie-pause"]}
    assert history.events == GOLDEN_V2_EVENTS


def test_golden_v1_history_still_reads_back() -> None:
    history = read_history(GOLDEN / "history-v1.jsonl")
    assert history.header["format"] == FORMAT and history.header["version"] == 1
    assert history.seed == 7 and history.run == RUN
    assert history.events == GOLDEN_EVENTS
    assert not history.is_part and not history.torn_tail


def test_golden_v1_batches_count_as_healthy_for_liveness() -> None:
    """Version 1 had no "failed": its batches are read as having no failed output, so they recover."""
    (fault,) = faults_of(read_history(GOLDEN / "history-v1.jsonl").events)
    assert (fault.kind, fault.recovered_s) == ("driver-kill", 1.0)
    failed_after = [*GOLDEN_EVENTS[:-3], {**GOLDEN_EVENTS[-3], "failed": 1}, *GOLDEN_EVENTS[-2:]]
    (fault,) = faults_of(failed_after)
    assert fault.recovered_s is None


def _golden_with_header(**changes: object) -> str:
    lines = (GOLDEN / "history-v1.jsonl").read_text().split("\n")
    header = json.loads(lines[0])
    header.update(changes)
    return "\n".join([json.dumps(header), *lines[1:]])


def test_another_version_is_refused_naming_it() -> None:
    with pytest.raises(HistoryFormatError, match=r"version 3 is not readable.*reads versions 1, 2"):
        parse_history(_golden_with_header(version=3), "h.jsonl")
    with pytest.raises(HistoryFormatError, match=r"version '2' is not readable"):
        parse_history(_golden_with_header(version="2"), "h.jsonl")


def test_another_format_is_refused_naming_it() -> None:
    with pytest.raises(ChaosError, match="format 'dstream-commit' is not a chaos history"):
        parse_history(_golden_with_header(format="dstream-commit"), "h.jsonl")


def test_a_bad_run_header_names_the_key() -> None:
    with pytest.raises(HistoryFormatError, match="run 'pipeline' is 'batchy'"):
        parse_history(_golden_with_header(run={**RUN, "pipeline": "batchy"}))
    with pytest.raises(ChaosValueError, match=r"lacks \['sink'\]"):
        run_header(1, {k: v for k, v in RUN.items() if k != "sink"})
    with pytest.raises(ChaosValueError, match="windowed run needs"):
        run_header(1, {**RUN, "pipeline": "windowed"})


def test_empty_file_and_damaged_middle_line_are_errors() -> None:
    with pytest.raises(HistoryFormatError, match="empty file"):
        parse_history("", "h.jsonl")
    text = (GOLDEN / "history-v1.jsonl").read_text().split("\n")
    text[3] = '{"t": 0.2, "proc": "producer-0"'
    with pytest.raises(HistoryFormatError, match=r"h.jsonl:4: not JSON"):
        parse_history("\n".join(text), "h.jsonl")
    text[3] = '{"t": "soon", "proc": "producer-0", "f": "send"}'
    with pytest.raises(HistoryFormatError, match=r"h.jsonl:4: 't' is 'soon'"):
        parse_history("\n".join(text), "h.jsonl")


def test_a_torn_last_line_is_dropped_and_reported() -> None:
    text = (GOLDEN / "history-v1.jsonl").read_text() + '{"t": 3.5, "proc": "pro'
    history = parse_history(text)
    assert history.torn_tail and history.events == GOLDEN_EVENTS
    # A complete last object without its newline is kept.
    text = (GOLDEN / "history-v1.jsonl").read_text() + '{"t": 3.5, "proc": "probe", "f": "healthy"}'
    history = parse_history(text)
    assert not history.torn_tail and history.events[-1]["t"] == 3.5


def test_time_going_back_in_one_file_is_an_error() -> None:
    text = (GOLDEN / "history-v1.jsonl").read_text() + '{"t": 0.0, "proc": "probe", "f": "healthy"}\n'
    with pytest.raises(HistoryFormatError, match="goes back"):
        parse_history(text, "h.jsonl")


def test_a_part_is_refused_where_a_complete_history_is_expected(tmp_path: Path) -> None:
    write_history(tmp_path / "p.jsonl", part_header("driver-0"), [])
    with pytest.raises(HistoryFormatError, match=r"part of process 'driver-0'.*merge"):
        read_history(tmp_path / "p.jsonl")
    assert read_history(tmp_path / "p.jsonl", allow_part=True).is_part


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_writer_stamps_t_from_its_origin_and_merge_orders_by_t_then_file(tmp_path: Path) -> None:
    clock = _Clock()
    main = HistoryWriter(tmp_path / "main.jsonl", run_header(3, RUN), clock=clock)
    part = HistoryWriter(tmp_path / "driver.jsonl", part_header("driver-0"), clock=clock, t0=main.t0)
    clock.now = 101.0
    main.record("nemesis", "fault-start", fault="driver-kill", target="driver-0", pid=1, detail={})
    part.record("driver-0", "batch-completed", batch=500)  # same t: main's event comes first
    clock.now = 100.5
    part.record("driver-0", "driver-started")
    main.close()
    part.close()
    # The part's own t went back: its file is refused when merged.
    with pytest.raises(HistoryFormatError, match="goes back"):
        merge_histories(tmp_path / "main.jsonl", [tmp_path / "driver.jsonl"], tmp_path / "all.jsonl")

    part = HistoryWriter(tmp_path / "driver2.jsonl", part_header("driver-0"), clock=clock, t0=main.t0)
    clock.now = 100.5
    part.record("driver-0", "driver-started")
    clock.now = 101.0
    part.record("driver-0", "batch-completed", batch=500)
    part.close()
    merged = merge_histories(tmp_path / "main.jsonl", [tmp_path / "driver2.jsonl"], tmp_path / "all.jsonl")
    assert [(e["t"], e["f"]) for e in merged.events] == [
        (0.5, "driver-started"),
        (1.0, "fault-start"),
        (1.0, "batch-completed"),
    ]
    assert read_history(tmp_path / "all.jsonl").events == merged.events


def test_writer_is_thread_safe_and_refuses_bad_events(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "h.jsonl", run_header(1, RUN))

    def send_many(n: int) -> None:
        for seq in range(1, 201):
            writer.record(f"producer-{n}", "send", "ok", rid=f"{n}-{seq}", key=f"k{n}", seq=seq, value=1)

    threads = [threading.Thread(target=send_many, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with pytest.raises(ChaosValueError, match="type 'maybe'"):
        writer.record("producer-0", "send", "maybe")
    with pytest.raises(ChaosValueError, match="not JSON-able"):
        writer.record("producer-0", "send", "ok", value=object())
    writer.close()
    writer.close()
    history = read_history(tmp_path / "h.jsonl")
    assert len(history.events) == 800
    for n in range(4):
        assert [e["seq"] for e in history.events if e["proc"] == f"producer-{n}"] == list(range(1, 201))
    with pytest.raises(FileExistsError):
        HistoryWriter(tmp_path / "h.jsonl", run_header(1, RUN))
