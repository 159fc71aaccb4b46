"""`RunSpec`: what one chaos run's driver runs, as a JSON-able value the runner hands its driver children.

The runner writes the spec to `<run dir>/spec.json`; each driver child (`python -m chaos.driver_process`)
reads it, so a restarted driver rebuilds exactly the same pipeline (getOrCreate compares the setup
function's code, and the push receivers keep their ports, which the producers reconnect to).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from chaos.errors import ChaosValueError

PIPELINES = ("stateless", "stateful", "windowed", "join")
SINKS = ("transactional", "sqlite", "canary")
SOURCES = ("push", "files")


@dataclass(frozen=True)
class RunSpec:
    """One run's pipeline and where everything lives.

    Attributes:
        pipeline: one of `PIPELINES`.
        sink: one of `SINKS` ("canary" is the at-least-once `AtLeastOnceFileSink`).
        source: "push" (PushClients, acknowledged once durable) or "files" (a replayable directory that
            the workload writes; stateless and stateful pipelines only).
        master: the engine's master URL.
        checkpoint: the checkpoint directory's URL.
        checkpoint_options: fsspec storage options for `checkpoint` (e.g. an S3 endpoint); they are
            written to `spec.json`, so give credentials through the environment, not here.
        output: the sink's URL (a directory; the SQLite sink keeps `chaos.sqlite` inside it).
        input_dir: the file source's directory (source "files").
        ports: the push receivers' ports by stream name ("a", and "b" for the join).
        batch_ms: the batch interval.
        window_ms, slide_ms: the windowed pipeline's window and slide (None for the others).
        checkpoint_interval_ms: how often stateful streams are data-checkpointed.
        receiver_wal: the receiver WAL (False only for the mutant the checker must catch).
        receiver_restart_delay_ms: how long a crashed receiver stays down.
        conf: extra engine configuration (string keys and values).
        setup: "module:function" of a user's setup factory (`function(spec)` returns the zero-argument
            setup function for getOrCreate); None for the built-in pipelines (`chaos.pipelines`).
        python_path: directories the driver child adds to sys.path to import `setup`.
        t0_monotonic: the runner's `time.monotonic()` at the start of the run (history times are
            relative to it; CLOCK_MONOTONIC is shared by the processes of one machine).
    """

    pipeline: str
    sink: str
    master: str
    checkpoint: str
    output: str
    source: str = "push"
    input_dir: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    batch_ms: int = 500
    window_ms: int | None = None
    slide_ms: int | None = None
    checkpoint_interval_ms: int = 1000
    receiver_wal: bool = True
    receiver_restart_delay_ms: int = 300
    conf: dict[str, str] = field(default_factory=dict)
    checkpoint_options: dict[str, Any] = field(default_factory=dict)
    setup: str | None = None
    python_path: list[str] = field(default_factory=list)
    t0_monotonic: float = 0.0

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("pipeline", self.pipeline, PIPELINES),
            ("sink", self.sink, SINKS),
            ("source", self.source, SOURCES),
        ):
            if value not in allowed:
                raise ChaosValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        if self.source == "files" and self.pipeline not in ("stateless", "stateful"):
            raise ChaosValueError(
                f"the file source feeds the stateless and stateful pipelines only, not {self.pipeline!r}"
            )
        if self.batch_ms < 100:
            raise ChaosValueError(f"batch_ms must be >= 100, got {self.batch_ms!r}")

    @property
    def streams(self) -> tuple[str, ...]:
        """The input streams' names: ("a", "b") for the join, ("a",) otherwise."""
        return ("a", "b") if self.pipeline == "join" else ("a",)

    def with_(self, **changes: Any) -> RunSpec:
        return replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        return cls(**json.loads(text))

    def save(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> RunSpec:
        return cls.from_json(path.read_text(encoding="utf-8"))
