"""The drill's live view: plain lines off a terminal, and a rich panel that renders."""

from __future__ import annotations

import io
import random

import pytest
from rich.console import Console

from chaos.drill.live_view import LiveState, LiveView
from tests.chaos.simulated import simulate

EVENTS = [
    {"t": 0.5, "proc": "producer-0", "f": "send", "type": "ok", "rid": "a"},
    {"t": 1.0, "proc": "driver-0", "f": "batch-completed", "type": "info", "batch": 1000, "records": 1},
    {
        "t": 2.0,
        "proc": "nemesis",
        "f": "fault-start",
        "type": "info",
        "fault": "driver-kill",
        "target": "driver-0",
    },
    {
        "t": 2.1,
        "proc": "nemesis",
        "f": "fault-end",
        "type": "info",
        "fault": "driver-kill",
        "target": "driver-0",
    },
    {"t": 3.0, "proc": "driver-1", "f": "recovery-started", "type": "info"},
    {"t": 4.5, "proc": "driver-1", "f": "batch-completed", "type": "info", "batch": 1500, "records": 2},
    {"t": 6.0, "proc": "producer-0", "f": "send", "type": "ok", "rid": "b"},
    {"t": 7.0, "proc": "runner", "f": "drained", "type": "info"},
]


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_the_plain_view_prints_faults_recoveries_and_progress() -> None:
    out = _Pipe()
    with LiveView(out, progress_every_s=5.0) as view:
        assert view.plain
        for event in EVENTS:
            view.on_event(event)
    assert out.getvalue().splitlines() == [
        "[    2.0s] fault 1: driver-kill on driver-0",
        "[    2.1s] fault 1 over: driver-kill; waiting for the next batch",
        "[    4.5s] recovered from driver-kill in 2.5 s",
        "[    6.0s] batches 2  acknowledged 2  committed 3  faults 1  state running",
        "[    7.0s] drained: the final quiet phase is over",
    ]


def test_state_tracks_the_fault_in_progress() -> None:
    state = LiveState()
    for event in EVENTS[:4]:
        state.apply(event)
    assert (state.state, state.fault_kind) == ("recovering", "driver-kill")
    assert state.since_fault_s == pytest.approx(0.1)
    state.apply(EVENTS[5])
    assert (state.state, state.last_recovery_s) == ("running", 2.5)


def test_the_rich_view_renders() -> None:
    view = LiveView(_Pipe(), plain=False, title="drill under test")
    for event in EVENTS[:4]:
        view.state.apply(event)
    console = Console(file=io.StringIO(), force_terminal=True, width=100, color_system=None)
    console.print(view.renderable())
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for expected in [
        "drill under test",
        "batches completed",
        "records committed",
        "recovering",
        "driver-kill",
    ]:
        assert expected in text


def test_the_rich_view_runs_live_over_a_whole_run() -> None:
    run = simulate(random.Random(50), "stateless", faults=[("driver-kill", 1.0, 0.2)])
    out = _Pipe()
    with LiveView(out, plain=False) as view:
        for event in run.events:
            view.on_event(event)
    assert "drained" in out.getvalue() and view.state.faults == 1
