"""The full chaos matrix, from the CLI: every pipeline into both exactly-once sinks under every local
fault kind, every reachable crash point, and the replayable file source.

It takes about 7 minutes (as long as half the default suite), so it runs only when asked:
`DSTREAM_CHAOS_MATRIX=1 pytest tests/chaos/test_matrix.py` (the default run has the smoke,
tests/chaos/test_smoke.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.nemesis.schedule import LOCAL_KINDS, REACHABLE_CRASH_POINTS

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("DSTREAM_CHAOS_MATRIX"),
        reason="the full chaos matrix runs with DSTREAM_CHAOS_MATRIX=1",
    ),
]
ROOT = Path(__file__).resolve().parents[2]


def chaos_run(out: Path, *args: str, timeout_s: float = 900.0) -> dict[str, object]:
    command = [sys.executable, "-m", "dstream.cli", "chaos", "run", "--out", str(out), *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary: dict[str, object] = json.loads((out / "summary.json").read_text())
    return summary


@pytest.mark.timeout(1000)
@pytest.mark.parametrize("sink", ["transactional", "sqlite"])
@pytest.mark.parametrize("pipeline", ["stateless", "stateful", "windowed", "join"])
def test_every_fault_kind_against_every_pipeline(tmp_path: Path, pipeline: str, sink: str) -> None:
    kinds = ",".join(LOCAL_KINDS)
    summary = chaos_run(
        tmp_path, "--pipeline", pipeline, "--sink", sink, "--faults", kinds,
        "--faults-per-run", str(len(LOCAL_KINDS)), "--seeds", "5",
    )  # fmt: skip
    assert summary["invalid_runs"] == 0
    assert set(summary["faults_by_kind"]) == set(LOCAL_KINDS)  # type: ignore[arg-type]


@pytest.mark.timeout(1000)
def test_every_reachable_crash_point(tmp_path: Path) -> None:
    summary = chaos_run(
        tmp_path, "--pipeline", "stateful", "--faults", "crashpoint",
        "--faults-per-run", str(len(REACHABLE_CRASH_POINTS)), "--seeds", "3",
    )  # fmt: skip
    assert summary["invalid_runs"] == 0
    assert summary["faults_by_kind"] == {"crashpoint": len(REACHABLE_CRASH_POINTS)}


@pytest.mark.timeout(1000)
def test_the_replayable_file_source(tmp_path: Path) -> None:
    summary = chaos_run(
        tmp_path, "--pipeline", "stateless,stateful", "--source", "files",
        "--faults", "driver-kill,crashpoint,kill-during-recovery", "--faults-per-run", "4", "--seeds", "9",
    )  # fmt: skip
    assert summary["invalid_runs"] == 0
