"""SIGKILL the driver of a stateful pipeline at random moments and at named crash points of the
checkpoint protocol, restart it with getOrCreate, and check the output is exact.

The workload writes input files with a known word multiset; each file's modification time is set a
little in the future before it is renamed into place, so the batch that takes it is the first batch
time >= its mtime. The reference for the output of batch T is therefore the count of every word of
the files with mtime <= T: every committed output directory must equal it (nothing lost, nothing
counted twice, re-runs identical), the output batches must be contiguous (missed batches re-run),
and the last one must hold the count of all input.
"""

from __future__ import annotations

import ast
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from wal.crashpoints import ENV_VAR, METADATA_AFTER_WRITE_BEFORE_PUBLISH, RDD_AFTER_PARTS_BEFORE_COMMIT

pytestmark = pytest.mark.chaos

REPO = Path(__file__).resolve().parents[2]
BATCH_MS = 250
FILES = 10
FILE_GAP_S = 0.12
MTIME_AHEAD_MS = 60
START_TIMEOUT_S = 60.0
FINISH_TIMEOUT_S = 60.0
WORDS = [f"w{i}" for i in range(7)]


class Run:
    """One pipeline under test: directories, the current child, the files written so far."""

    def __init__(
        self,
        root: Path,
        ckpt_url: str | None = None,
        options: dict[str, Any] | None = None,
        master: str = "local[2]",
    ) -> None:
        self.master = master
        self.input, self.ready = root / "in", root / "ready"
        self.ckpt = ckpt_url or str(root / "ckpt")
        self.options = dict(options or {})
        self.out_prefix = root / "out" / "counts"
        for d in (self.input, self.ready, self.out_prefix.parent):
            d.mkdir(parents=True)
        self.files: list[tuple[int, Counter[str]]] = []
        self.child: subprocess.Popen[bytes] | None = None
        self.rng = random.Random(1234)
        self.started_as: list[str] = []

    def start(self, crash_point: str | None = None) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "CHAOS_CKPT_OPTIONS": json.dumps(self.options),
            "CHAOS_MASTER": self.master,
        }
        env.pop(ENV_VAR, None)
        if crash_point:
            env[ENV_VAR] = crash_point
        self.release()
        before = set(self.ready.glob("ready-*"))
        args = [str(self.ckpt), str(self.input), str(self.out_prefix), str(self.ready)]
        self.child = subprocess.Popen(
            [sys.executable, "-m", "tests.recovery.chaos_child", *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
        )
        for _ in range(int(START_TIMEOUT_S / 0.05)):
            if set(self.ready.glob("ready-*")) - before or self.child.poll() is not None:
                break
            self.wait_s(0.05)
        new = set(self.ready.glob("ready-*")) - before
        assert new or self.child.poll() == -signal.SIGKILL, "child did not start"
        self.started_as.extend(p.read_text() for p in new)
        return self.child

    def wait_s(self, seconds: float) -> None:
        """Let real time pass while the child runs (returns early if it died)."""
        if self.child is not None and self.child.poll() is None:
            try:
                self.child.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                pass

    def kill(self) -> None:
        assert self.child is not None
        self.child.kill()
        self.child.wait(timeout=30)
        self.release()

    def release(self) -> None:
        """Close the pipe to a child that is gone (a crash point kills it without our help)."""
        if self.child is not None and self.child.stdin is not None:
            self.child.stdin.close()

    def write_file(self) -> None:
        words = [self.rng.choice(WORDS) for _ in range(self.rng.randint(1, 30))]
        name = f"f{len(self.files):04d}.txt"
        tmp = self.input / f".{name}"
        tmp.write_text(" ".join(words) + "\n")
        ahead_ns = time.time_ns() + MTIME_AHEAD_MS * 1_000_000
        os.utime(tmp, ns=(ahead_ns, ahead_ns))
        tmp.rename(self.input / name)
        mtime_ms = round(os.stat(self.input / name).st_mtime * 1000)
        self.files.append((mtime_ms, Counter(words)))

    def reference(self, batch_ms: int) -> Counter[str]:
        total: Counter[str] = Counter()
        for mtime_ms, words in self.files:
            if mtime_ms <= batch_ms:
                total += words
        return total

    def outputs(self) -> dict[int, Counter[str]]:
        found: dict[int, Counter[str]] = {}
        for d in self.out_prefix.parent.iterdir():
            if not d.name.startswith("counts-") or not (d / "_SUCCESS").exists():
                continue
            counts: Counter[str] = Counter()
            for part in sorted(d.glob("part-*")):
                for line in part.read_text().splitlines():
                    word, n = ast.literal_eval(line)
                    assert word not in counts, f"{d.name}: key {word} twice"
                    counts[word] = n
            found[int(d.name.split("-", 1)[1])] = counts
        return found

    def finish_and_check(self) -> None:
        total = self.reference(10**15)
        last_mtime = max(m for m, _ in self.files)
        for _ in range(int(FINISH_TIMEOUT_S / 0.1)):
            if any(t >= last_mtime for t in self.outputs()):
                break
            self.wait_s(0.1)
        assert self.child is not None and self.child.stdin is not None
        self.child.stdin.close()
        self.child.wait(timeout=60)
        outputs = self.outputs()
        assert outputs, "no committed output at all"
        times = sorted(outputs)
        assert times[-1] >= last_mtime, f"no output covers the last file (mtime {last_mtime})"
        assert times == list(range(times[0], times[-1] + 1, BATCH_MS)), "missing batches in the output"
        for t in times:
            assert outputs[t] == self.reference(t), f"batch {t}: {outputs[t]} != {self.reference(t)}"
        assert outputs[times[-1]] == total
        self.batches_checked = len(times)


def kill_and_restart(run: Run, kills: int) -> None:
    rng = random.Random(7)
    run.start()
    for _kill in range(kills):
        for _ in range(3):
            run.write_file()
            run.wait_s(FILE_GAP_S)
        run.wait_s(rng.uniform(0.1, 0.6))
        run.kill()
        run.write_file()  # written while the driver is down
        run.start()
    run.write_file()
    run.finish_and_check()
    assert run.started_as == ["new"] + ["recovered"] * kills


def test_random_sigkills_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    kill_and_restart(Run(tmp_path), 3)


@pytest.mark.slow
def test_random_sigkills_of_a_driver_on_local_cluster(tmp_path: Path) -> None:
    # Each restarted driver starts a fresh embedded Dask cluster (the killed one's workers died with it).
    kill_and_restart(Run(tmp_path, master="local-cluster[2]"), 2)


def test_random_sigkills_with_the_checkpoint_on_s3(tmp_path: Path, s3_moto: Any) -> None:
    kill_and_restart(Run(tmp_path, s3_moto.url, s3_moto.storage_options), 2)


@pytest.mark.parametrize(
    "crash_point", [f"{RDD_AFTER_PARTS_BEFORE_COMMIT}@2", f"{METADATA_AFTER_WRITE_BEFORE_PUBLISH}@6"]
)
def test_sigkill_inside_the_checkpoint_protocol(tmp_path: Path, crash_point: str) -> None:
    run = Run(tmp_path)
    child = run.start(crash_point)
    for _ in range(FILES):
        run.write_file()
        run.wait_s(FILE_GAP_S)
        if child.poll() is not None:
            break
    assert child.wait(timeout=START_TIMEOUT_S) == -signal.SIGKILL, "the crash point was not reached"
    run.write_file()
    run.start()
    run.write_file()
    run.finish_and_check()
    assert run.started_as[-1] == "recovered"
