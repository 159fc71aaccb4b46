"""SIGTERM with spark.streaming.stopGracefullyOnShutdown: the driver stops gracefully and exits 0.

A push client sends frames to a child driver and, right after the last acknowledgement, the test sends
the child SIGTERM: records acknowledged moments before (stored, not yet in a batch) must still reach the
output, each exactly once, and the child must exit with status 0.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from dstream.client import PushClient

ROOT = Path(__file__).resolve().parents[2]
FRAMES_N = 20
RECORDS_PER_FRAME = 50
WAIT_S = 60.0


def test_sigterm_stops_gracefully_losing_nothing_acknowledged(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with (tmp_path / "child.log").open("w") as log:  # the child keeps its own fd
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.sigterm_child", str(out)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        with proc.stdout:  # the child prints one line only
            port = int(proc.stdout.readline())
        acked: list[str] = []
        with PushClient("127.0.0.1", port, "sigterm-test", timeout_s=WAIT_S) as client:
            for f in range(FRAMES_N):
                frame = [f"f{f}-r{r}" for r in range(RECORDS_PER_FRAME)]
                client.send(frame)
                acked.extend(frame)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT_S)
    assert code == 0, (tmp_path / "child.log").read_text()[-3000:]
    seen = Counter(out.read_text().splitlines()) if out.exists() else Counter()
    assert [r for r in acked if seen[r] != 1] == []
