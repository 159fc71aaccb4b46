"""The chaos history: a JSONL record of every send, fault, probe and engine event of a run.

Ground truth for the checker is what the producers were told (a send is acknowledged or not) and what
the sink committed; everything the engine says about itself is telemetry for diagnosis and timing.

Format "dstream-chaos-history", version 2
========================================

A history is a UTF-8 text file of JSON objects, one per line, each line ending in "\\n".

Line 1 is the header. A complete history's header is::

    {"format": "dstream-chaos-history", "version": 2, "seed": <int>,
     "run": {"pipeline": "stateless|stateful|windowed|join", "sink": "transactional|sqlite|canary",
             "master": <str>, "checkpoint": <str>, "batch_ms": <int>, "window_ms": <int|null>,
             "slide_ms": <int|null>, "faults": [<fault kind>...], "recovery_bound_s": <float>}}

A part (the stream of one process, merged into the complete history at the end of a run) has the header
``{"format": "dstream-chaos-history", "version": 2, "part": <proc>}``. Extra header keys are allowed
and kept (a later writer of the same version may add diagnosis); a missing or ill-typed required key is
an error.

Every other line is an event with at least ``"t"`` (float: seconds since the run started, on the
machine's monotonic clock, so the processes of a run share it), ``"proc"`` (str: who wrote it) and
``"f"`` (str: what happened). ``"type"``, when present, is one of "invoke", "ok", "fail", "info".

- Sends (proc "producer-<n>", f "send"): "type" is "invoke" before sending, then exactly one of "ok"
  (acknowledged: durable, must be committed exactly once), "fail" (definitely refused: must not appear)
  or "info" (outcome unknown: may appear 0 or 1 times); each carries "rid" (unique str), "stream"
  ("a", or "a"/"b" for the join), "key" (str; a key belongs to one producer), "seq" (int, contiguous
  1, 2, 3... per key in send order) and "value" (int).
- Faults (proc "nemesis", type "info"): f "fault-start" / "fault-end" with "fault" (a kind of
  `FAULT_KINDS`), "target" (str), "pid" (int or null), "detail" (object).
- Engine telemetry (proc "driver-<n>", type "info"): f "driver-started", "recovery-started",
  "recovery-done", "batch-completed" (with "batch": batch time in ms, "records", and "failed": how
  many of its output operations failed), "checkpoint-completed",
  "driver-fenced" (the driver lost its lease to a successor and stops),
  "workers" (with "pids": worker address -> pid, on a master with worker processes),
  "receiver-started" (with "stream", the stream id, and "location": "driver" or the worker's
  address), "receivers" (with "addresses": stream name ->
  [host, port] where its push receiver listens, or null while it is not placed).
- Probes (proc "probe"): f "healthy", type "ok" or "fail".
- End marker (proc "runner", type "info", f "drained"): the final quiet phase finished.

Versions
--------
Version 2 (this writer) added to version 1: "failed" and "records" on "batch-completed", the events
"driver-fenced", "workers", "receiver-started" and "receivers", and the fault kind "zombie-pause". A
version 1 file is read as it is: its batches count as having no failed output, its receivers have no
known location, and it holds none of the newer events or fault kinds. The bump exists because a version
1 reader given a version 2 file would read a batch whose outputs failed as healthy (liveness) instead of
refusing it. `tests/chaos/golden/` keeps one file of each version.

Readers
-------
A header of another format or of a version other than 1 and 2 is refused with `HistoryFormatError`
naming both. Within a file, "t" never decreases (each writer holds a lock and a monotonic clock).
Torn-tail rule: a process killed mid-line may leave its last line without its "\\n"; such a last line, if it
is not a complete JSON object, is dropped and `History.torn_tail` says so. Any other line that is not a
JSON object with the required keys is an error naming the file and the line number.

Merge rule: the complete history is the main file's header followed by the events of the main file and
of every part, ordered by "t", ties broken by file order (main first, then parts as given) and then by
line order.

Why plain files and not the storage seam: the history is the run's ground truth, so it must not pass
through the fault-injecting storage it observes; it is written with ordinary buffered writes, flushed
after every line (a SIGKILLed process keeps what it flushed), never fsynced (a run does not survive the
machine).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from chaos.errors import ChaosValueError, HistoryFormatError

FORMAT = "dstream-chaos-history"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

PIPELINES = ("stateless", "stateful", "windowed", "join")
SINKS = ("transactional", "sqlite", "canary")
FAULT_KINDS = (
    "driver-kill",
    "receiver-crash",
    "worker-kill",
    "receiver-worker-kill",
    "pause",
    "crashpoint",
    "storage",
    "split-brain",
    "kill-during-recovery",
    "zombie-pause",  # since version 2
)
EVENT_TYPES = ("invoke", "ok", "fail", "info")
RUN_KEYS = (
    "pipeline",
    "sink",
    "master",
    "checkpoint",
    "batch_ms",
    "window_ms",
    "slide_ms",
    "faults",
    "recovery_bound_s",
)

JSON = dict[str, Any]


@dataclass(frozen=True)
class History:
    """A parsed history: its header and its events in file order.

    Attributes:
        header: the header object (line 1).
        events: every event, as the JSON objects read.
        torn_tail: a torn last line was dropped (see the module's torn-tail rule).
    """

    header: JSON
    events: list[JSON] = field(default_factory=list)
    torn_tail: bool = False

    @property
    def is_part(self) -> bool:
        """True for one process's part, False for a complete history."""
        return "part" in self.header

    @property
    def seed(self) -> int:
        """The run's seed (complete histories only)."""
        return int(self.header["seed"])

    @property
    def run(self) -> JSON:
        """The run's description (complete histories only)."""
        return dict(self.header["run"])


# -- headers ------------------------------------------------------------------------------------


def run_header(seed: int, run: Mapping[str, Any]) -> JSON:
    """The header of a complete history, checked against the spec.

    Raises:
        ChaosValueError: a run key is missing or has a value the spec does not allow.
    """
    header: JSON = {"format": FORMAT, "version": FORMAT_VERSION, "seed": seed, "run": dict(run)}
    problem = _run_header_problem(header)
    if problem:
        raise ChaosValueError(f"history header: {problem}")
    return header


def part_header(proc: str) -> JSON:
    """The header of one process's part of a history."""
    if not isinstance(proc, str) or not proc:
        raise ChaosValueError(f"history part: proc must be a non-empty str, got {proc!r}")
    return {"format": FORMAT, "version": FORMAT_VERSION, "part": proc}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _run_header_problem(header: Mapping[str, Any]) -> str:
    """What is wrong with a complete history's header ('' if nothing)."""
    if not _is_int(header.get("seed")):
        return f"'seed' must be an int, got {header.get('seed')!r}"
    run = header.get("run")
    if not isinstance(run, Mapping):
        return f"'run' must be an object, got {run!r}"
    missing = [key for key in RUN_KEYS if key not in run]
    if missing:
        return f"'run' lacks {missing} (expected the keys {list(RUN_KEYS)})"
    checks: list[tuple[str, bool, str]] = [
        ("pipeline", run["pipeline"] in PIPELINES, f"one of {list(PIPELINES)}"),
        ("sink", run["sink"] in SINKS, f"one of {list(SINKS)}"),
        ("master", isinstance(run["master"], str), "a str"),
        ("checkpoint", isinstance(run["checkpoint"], str), "a str"),
        ("batch_ms", _is_int(run["batch_ms"]) and run["batch_ms"] > 0, "a positive int"),
        ("window_ms", run["window_ms"] is None or _is_int(run["window_ms"]), "an int or null"),
        ("slide_ms", run["slide_ms"] is None or _is_int(run["slide_ms"]), "an int or null"),
        (
            "faults",
            isinstance(run["faults"], list) and all(k in FAULT_KINDS for k in run["faults"]),
            f"a list of fault kinds from {list(FAULT_KINDS)}",
        ),
        ("recovery_bound_s", _is_number(run["recovery_bound_s"]), "a number of seconds"),
    ]
    for key, ok, expected in checks:
        if not ok:
            return f"run '{key}' is {run[key]!r}, expected {expected}"
    if run["pipeline"] == "windowed" and (run["window_ms"] is None or run["slide_ms"] is None):
        return "a windowed run needs 'window_ms' and 'slide_ms' (got null)"
    return ""


def _check_header(header: object, source: str) -> JSON:
    if not isinstance(header, dict):
        raise HistoryFormatError(f"{source}:1: the header is {header!r}, expected a JSON object")
    fmt, version = header.get("format"), header.get("version")
    if fmt != FORMAT:
        raise HistoryFormatError(f"{source}: format {fmt!r} is not a chaos history (expected {FORMAT!r})")
    if version not in READABLE_VERSIONS:
        raise HistoryFormatError(
            f"{source}: {FORMAT} version {version!r} is not readable here (this reader reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))})"
        )
    if "part" in header:
        if not isinstance(header["part"], str):
            raise HistoryFormatError(f"{source}:1: 'part' is {header['part']!r}, expected a str")
        return header
    problem = _run_header_problem(header)
    if problem:
        raise HistoryFormatError(f"{source}:1: {problem}")
    return header


# -- reading ------------------------------------------------------------------------------------


def _event_problem(event: object) -> str:
    if not isinstance(event, dict):
        return f"expected a JSON object, got {event!r}"
    if not _is_number(event.get("t")):
        return f"'t' is {event.get('t')!r}, expected a number of seconds"
    if not isinstance(event.get("proc"), str):
        return f"'proc' is {event.get('proc')!r}, expected a str"
    if not isinstance(event.get("f"), str):
        return f"'f' is {event.get('f')!r}, expected a str"
    if "type" in event and event["type"] not in EVENT_TYPES:
        return f"'type' is {event['type']!r}, expected one of {list(EVENT_TYPES)}"
    return ""


def parse_history(text: str, source: str = "<history>", *, allow_part: bool = False) -> History:
    """Parse a history's text (pure; `read_history` is the file shell).

    Args:
        text: the whole file.
        source: a name for messages (the path).
        allow_part: accept one process's part as well as a complete history.

    Raises:
        HistoryFormatError: another format or version, a part where a complete history was expected,
            or a damaged line other than a torn tail.
    """
    lines = text.split("\n")
    # A file ending in "\n" splits into [..., ""]; anything else in the last slot is an unfinished line.
    unfinished = lines.pop()
    if not lines and not unfinished:
        raise HistoryFormatError(f"{source}: empty file, expected a {FORMAT} header line")
    torn_tail = False
    if unfinished:
        try:
            last = json.loads(unfinished)
        except ValueError:
            last = None
        if last is not None and not _event_problem(last) and lines:
            lines.append(unfinished)
        elif lines:
            torn_tail = True
        else:
            lines.append(unfinished)
    header = _check_header(_load_line(lines[0], source, 1), source)
    if "part" in header and not allow_part:
        raise HistoryFormatError(
            f"{source}: is the part of process {header['part']!r}, expected a complete history "
            "(merge the parts first: chaos.history.merge_histories)"
        )
    events: list[JSON] = []
    previous_t = float("-inf")
    for number, line in enumerate(lines[1:], start=2):
        event = _load_line(line, source, number)
        problem = _event_problem(event)
        if problem:
            raise HistoryFormatError(f"{source}:{number}: {problem}")
        if event["t"] < previous_t:
            raise HistoryFormatError(f"{source}:{number}: 't' goes back from {previous_t} to {event['t']}")
        previous_t = event["t"]
        events.append(event)
    return History(header=header, events=events, torn_tail=torn_tail)


def _load_line(line: str, source: str, number: int) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise HistoryFormatError(f"{source}:{number}: not JSON ({exc}): {line[:80]!r}") from None


def read_history(path: str | Path, *, allow_part: bool = False) -> History:
    """Read a history file; see `parse_history` for the rules and errors."""
    text = Path(path).read_text(encoding="utf-8")
    return parse_history(text, str(path), allow_part=allow_part)


# -- merging ------------------------------------------------------------------------------------


def merge_events(streams: Sequence[Sequence[JSON]]) -> list[JSON]:
    """The events of several files as one sequence: by "t", then file order, then line order (pure)."""
    merged = [event for stream in streams for event in stream]
    merged.sort(key=lambda event: event["t"])  # stable: ties keep file order, then line order
    return merged


def merge_histories(main: str | Path, parts: Sequence[str | Path], out: str | Path) -> History:
    """Merge a run's main file and its processes' parts into one complete history at `out`.

    Raises:
        HistoryFormatError: a file is unreadable (see `parse_history`), or `main` is itself a part.
    """
    head = read_history(main)
    streams = [head.events] + [read_history(p, allow_part=True).events for p in parts]
    merged = History(header=head.header, events=merge_events(streams))
    with open(out, "x", encoding="utf-8") as stream:
        stream.write(_dumps(merged.header))
        stream.writelines(_dumps(event) for event in merged.events)
    return merged


# -- writing ------------------------------------------------------------------------------------


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n"


class HistoryWriter:
    """Appends events to one history file (a complete history or one process's part); thread-safe.

    Every event is one line, written and flushed under a lock, so threads never interleave and a
    killed process keeps every event it finished writing.

    Args:
        path: the file to create (an existing file is refused: a run never appends to another's).
        header: `run_header(...)` or `part_header(...)`.
        clock: monotonic seconds; injected in tests.
        t0: the run's origin on `clock` (a child process gets its parent's, so "t" is shared);
            default now.
    """

    def __init__(
        self,
        path: str | Path,
        header: Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.monotonic,
        t0: float | None = None,
    ) -> None:
        _check_header(dict(header), str(path))
        self.path = Path(path)
        self.clock = clock
        self.t0 = clock() if t0 is None else t0
        self._lock = threading.Lock()
        self._stream: IO[str] | None = open(self.path, "x", encoding="utf-8")  # noqa: SIM115
        self._write_line(_dumps(header))

    def record(self, proc: str, f: str, type: str = "info", **fields: Any) -> JSON:
        """Append one event stamped with the current "t"; returns it.

        Raises:
            ChaosValueError: `type` is not an event type, or a field is not JSON-able.
        """
        if type not in EVENT_TYPES:
            raise ChaosValueError(f"history event type {type!r}: expected one of {list(EVENT_TYPES)}")
        with self._lock:
            event: JSON = {"t": round(self.clock() - self.t0, 6), "proc": proc, "f": f, "type": type}
            event.update(fields)
            try:
                line = _dumps(event)
            except (TypeError, ValueError) as exc:
                raise ChaosValueError(f"history event {f!r} of {proc!r} is not JSON-able: {exc}") from None
            self._write_line(line)
        return event

    def _write_line(self, line: str) -> None:
        if self._stream is None:
            raise ChaosValueError(f"history {self.path} is closed")
        self._stream.write(line)
        self._stream.flush()

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_history(path: str | Path, header: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> None:
    """Write a whole history at once (tests, golden files, re-checks); `path` must not exist."""
    _check_header(dict(header), str(path))
    with open(path, "x", encoding="utf-8") as stream:
        stream.write(_dumps(header))
        stream.writelines(_dumps(event) for event in events)
