"""The drill's live view: progress, the fault in progress and the recovery state, while a run goes on.

The runner calls `LiveView.on_event` with every history event as it records it (the same dicts), and
may pass a batch-completed event a "records" count (records the batch committed), which the history
format allows as an extra field. `LiveState` folds the events (pure; "now" is the latest event's "t",
so tests need no clock); two thin renderers show it:

- on a terminal, a rich panel redrawn in place (`rich.live.Live`);
- otherwise (CI logs, pipes), plain lines: one per fault start, fault end, recovery and drain, and a
  progress line at most every `progress_every_s` seconds of run time.

Recovery states: "running" (no fault yet, or the last one recovered), "fault" (between fault-start and
fault-end), "recovering" (after fault-end, until a batch completes), "drained" (the run's final quiet
phase is over).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table


@dataclass
class LiveState:
    """What the live view shows, folded from history events."""

    now_s: float = 0.0
    batches: int = 0
    acknowledged: int = 0
    committed: int = 0
    faults: int = 0
    state: str = "running"
    fault_kind: str | None = None
    fault_target: str | None = None
    fault_at_s: float | None = None
    last_recovery_s: float | None = None

    def apply(self, event: Mapping[str, Any]) -> str | None:
        """Fold one event in; returns a line worth printing on its own, or None."""
        self.now_s = max(self.now_s, float(event.get("t", self.now_s)))
        f = event.get("f")
        if f == "send" and event.get("type") == "ok":
            self.acknowledged += 1
        elif f == "batch-completed":
            return self._batch_completed(event)
        elif f == "fault-start":
            self.faults += 1
            self.state = "fault"
            self.fault_kind, self.fault_target = str(event.get("fault")), str(event.get("target"))
            self.fault_at_s = self.now_s
            return f"fault {self.faults}: {self.fault_kind} on {self.fault_target}"
        elif f == "fault-end" and self.state == "fault":
            self.state = "recovering"
            return f"fault {self.faults} over: {self.fault_kind}; waiting for the next batch"
        elif f == "drained":
            self.state = "drained"
            return "drained: the final quiet phase is over"
        return None

    def _batch_completed(self, event: Mapping[str, Any]) -> str | None:
        self.batches += 1
        self.committed += int(event.get("records", 0))
        if self.state != "recovering" or self.fault_at_s is None:
            return None
        self.state = "running"
        self.last_recovery_s = round(self.now_s - self.fault_at_s, 3)
        return f"recovered from {self.fault_kind} in {self.last_recovery_s:.1f} s"

    @property
    def since_fault_s(self) -> float | None:
        """Seconds since the last fault started (None before the first)."""
        return None if self.fault_at_s is None else self.now_s - self.fault_at_s

    def progress_line(self) -> str:
        """One line of progress, for the plain view."""
        return (
            f"batches {self.batches}  acknowledged {self.acknowledged}  committed {self.committed}  "
            f"faults {self.faults}  state {self.state}"
        )


class LiveView:
    """Shows a run's progress on `stream`: rich when it is a terminal, plain lines otherwise.

    Args:
        stream: where to write; default stdout.
        plain: force the plain (True) or the rich (False) view; default by `stream.isatty()`.
        progress_every_s: run seconds between two progress lines in the plain view.
        title: the rich panel's title.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        plain: bool | None = None,
        progress_every_s: float = 5.0,
        title: str = "dstream drill",
    ) -> None:
        self.stream = sys.stdout if stream is None else stream
        self.plain = not self.stream.isatty() if plain is None else plain
        self.progress_every_s = progress_every_s
        self.title = title
        self.state = LiveState()
        self._next_progress_s = progress_every_s
        self._live: Live | None = None
        self._lock = threading.Lock()  # the runner calls on_event from its producer and driver threads

    def __enter__(self) -> LiveView:
        if not self.plain:
            console = Console(file=self.stream, force_terminal=True)
            self._live = Live(self.renderable(), console=console, refresh_per_second=4, transient=False)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self.renderable(), refresh=True)
            self._live.stop()
            self._live = None

    def on_event(self, event: Mapping[str, Any]) -> None:
        """The runner's callback: one history event, from any thread."""
        with self._lock:
            self._on_event(event)

    def _on_event(self, event: Mapping[str, Any]) -> None:
        line = self.state.apply(event)
        if self._live is not None:
            self._live.update(self.renderable())
            return
        if not self.plain:
            return
        if line is not None:
            self._print(line)
        if self.state.now_s >= self._next_progress_s and self.state.state != "drained":
            self._print(self.state.progress_line())
            while self._next_progress_s <= self.state.now_s:
                self._next_progress_s += self.progress_every_s

    def _print(self, line: str) -> None:
        self.stream.write(f"[{self.state.now_s:7.1f}s] {line}\n")
        self.stream.flush()

    def renderable(self) -> Table:
        """The rich view of the current state."""
        s = self.state
        table = Table(title=self.title, show_header=False, title_justify="left", min_width=48)
        table.add_column(style="bold")
        table.add_column(justify="right")
        table.add_row("run time", f"{s.now_s:.1f} s")
        table.add_row("batches completed", str(s.batches))
        table.add_row("records acknowledged", str(s.acknowledged))
        table.add_row("records committed", str(s.committed))
        table.add_row("faults injected", str(s.faults))
        colour = {"running": "green", "fault": "red", "recovering": "yellow", "drained": "cyan"}[s.state]
        table.add_row("state", f"[{colour}]{s.state}[/{colour}]")
        if s.fault_kind is not None:
            table.add_row("last fault", f"{s.fault_kind} on {s.fault_target}")
            table.add_row("since the fault", f"{s.since_fault_s:.1f} s")
        if s.last_recovery_s is not None:
            table.add_row("last recovery", f"{s.last_recovery_s:.1f} s")
        return table
