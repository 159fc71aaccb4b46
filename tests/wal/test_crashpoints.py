"""Named crash points: parsing, and that the N-th hit (and only it) kills the process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from wal import crashpoints
from wal.errors import WALValueError

LOOP = """
from wal.crashpoints import crash_point
for i in range(1, 6):
    print(i, flush=True)
    crash_point("p")
print("survived", flush=True)
"""


def _run(spec: str | None) -> tuple[int, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != crashpoints.ENV_VAR}
    if spec is not None:
        env[crashpoints.ENV_VAR] = spec
    proc = subprocess.run([sys.executable, "-c", LOOP], env=env, capture_output=True, timeout=60, check=False)
    return proc.returncode, proc.stdout.decode().split()


@pytest.mark.parametrize(("spec", "expected"), [("p", ("p", 1)), ("p@3", ("p", 3)), ("a.b@12", ("a.b", 12))])
def test_parse_spec(spec: str, expected: tuple[str, int]) -> None:
    assert crashpoints.parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["p@0", "p@x", "p@"])
def test_bad_spec_is_a_value_error(spec: str) -> None:
    with pytest.raises(WALValueError, match=repr(spec)):
        crashpoints.parse_spec(spec)


@pytest.mark.chaos
@pytest.mark.parametrize(("spec", "rc", "printed"), [
    (None, 0, ["1", "2", "3", "4", "5", "survived"]),
    ("other", 0, ["1", "2", "3", "4", "5", "survived"]),
    ("p", -signal.SIGKILL, ["1"]),
    ("p@3", -signal.SIGKILL, ["1", "2", "3"]),
])  # fmt: skip
def test_nth_hit_kills(spec: str | None, rc: int, printed: list[str]) -> None:
    assert _run(spec) == (rc, printed)


def test_every_named_point_is_listed() -> None:
    names = {v for k, v in vars(crashpoints).items() if k.isupper() and isinstance(v, str) and "." in v}
    assert names == crashpoints.CRASH_POINTS
    assert {"rdd.after_parts_before_commit", "metadata.after_write_before_publish",
            "sink.after_stage_before_commit"} <= crashpoints.CRASH_POINTS  # fmt: skip
