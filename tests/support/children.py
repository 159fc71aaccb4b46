"""Child processes for kill tests: run a module that prints "ack N" lines, SIGKILL it at a chosen moment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from wal import crashpoints

ROOT = Path(__file__).resolve().parents[2]


def run_acking_child(
    module: str,
    args: list[str],
    *,
    crash: str | None,
    kill_after_acks: int | None,
    delay_s: float,
    timeout_s: float,
) -> tuple[int, list[int]]:
    """Run `python -m module *args` until it ends or is killed; returns (returncode, acknowledged numbers).

    Args:
        crash: a `DSTREAM_CRASH_POINT` spec for the child (it SIGKILLs itself there), or None.
        kill_after_acks: SIGKILL the child `delay_s` seconds after its N-th "ack" line, or never.
        timeout_s: bound on the child's whole run.

    Raises:
        AssertionError: the child exited with anything but 0 or SIGKILL (its stderr tail is shown).
    """
    env = {k: v for k, v in os.environ.items() if k != crashpoints.ENV_VAR}
    if crash:
        env[crashpoints.ENV_VAR] = crash
    with subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env,
    ) as proc:  # fmt: skip  # closes the pipes on exit
        assert proc.stdout is not None and proc.stderr is not None
        acks: list[int] = []
        for line in proc.stdout:
            if line.startswith(b"ack "):
                acks.append(int(line.split()[1]))
                if len(acks) == kill_after_acks:
                    threading.Event().wait(delay_s)  # the random moment, after some progress
                    proc.send_signal(signal.SIGKILL)
        try:
            rc = proc.wait(timeout=timeout_s)
        finally:
            proc.kill()
        if rc not in (0, -signal.SIGKILL):
            raise AssertionError(f"{module} failed rc={rc}: {proc.stderr.read().decode()[-3000:]}")
    return rc, acks


def port_other_than(port: int) -> int:
    """A free port on 127.0.0.1 other than `port`: where a restarted child listens when its receiver
    moves (`port`, its dead predecessor's, is free too, so the OS could hand it out again)."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            candidate: int = sock.getsockname()[1]
        if candidate != port:
            return candidate
    raise AssertionError(f"no free port other than {port} in 100 tries")
