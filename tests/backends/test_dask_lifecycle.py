"""The Dask backend's lifecycle: an embedded cluster ends with its driver, stopped or SIGKILLed, and a
joined scheduler's workers are not asked to reach what only the driver can."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import dask.config
import pytest

from dstream.backends.dask.cluster import HOUSEKEEPING_INTERVALS, housekeeping_intervals
from dstream.backends.dask.worker_plugin import ExecutorPlugin, run_task
from dstream.backends.dask_blocks import PROTOCOL_VERSION
from dstream.backends.serialization import SerializedTask
from dstream.context import Conf, Context
from dstream.errors import DStreamStateError, DStreamValueError
from dstream.streaming import StreamingContext
from tests.support.dask_cluster import kill_all, wait_gone

ROOT = Path(__file__).resolve().parents[2]
CHILD_START_S = 120.0


def test_stop_leaves_no_worker_process_behind() -> None:
    sc = Context("local-cluster[2]", "lifecycle")
    try:
        assert sc.defaultParallelism == 2 and sc.uiWebUrl is None  # no dashboard unless asked
        settings = sc._backend.run_on_workers(  # type: ignore[attr-defined]
            _worker_settings, workers=None, timeout_s=CHILD_START_S
        )
        # Nor its profiler; and Dask's housekeeping at dstream's intervals, in every process.
        assert settings == {w: (False, 1.0, 0.5) for w in settings} and len(settings) == 2
        cluster = sc._backend._handle.cluster  # type: ignore[attr-defined]
        assert cluster.scheduler._tick_interval == 1.0
        nannies = {
            (n._tick_interval, n.memory_manager.memory_monitor_interval) for n in cluster.workers.values()
        }
        assert nannies == {(1.0, 0.5)} and len(cluster.workers) == 2
        assert sorted(sc.parallelize(range(6), 3).map(lambda x: x * x).collect()) == [0, 1, 4, 9, 16, 25]
        pids = list(sc._backend.worker_processes().values())  # type: ignore[attr-defined]
        assert len(set(pids)) == 2
    finally:
        sc.stop()
    try:
        assert wait_gone(pids) == []
    finally:
        kill_all(pids)
    sc.stop()  # idempotent


def test_a_worker_refuses_a_driver_of_another_protocol_version_and_the_driver_says_so() -> None:
    sc = Context("local-cluster[1]", "versions")
    try:
        sc._backend.wait_for_workers()  # type: ignore[attr-defined]
        client = sc._backend.client  # type: ignore[attr-defined]
        newer = ExecutorPlugin("dstream-executor-newer")
        newer.protocol = PROTOCOL_VERSION + 1  # what a driver of the next version sends
        expected = f"protocol version {PROTOCOL_VERSION} and the driver version {PROTOCOL_VERSION + 1}"
        with pytest.raises(DStreamStateError, match=expected):
            client.register_plugin(newer, name=newer.name)
        # A task for that driver on the worker (as on one that joined later, where only its log said so).
        with pytest.raises(DStreamStateError, match=expected):
            client.submit(run_task, newer.name, SerializedTask(b"", ()), pure=False).result(
                timeout=CHILD_START_S
            )
        older = ExecutorPlugin("dstream-executor-older")
        del older.protocol  # a driver from before the versions: its plugin has no such field
        with pytest.raises(
            DStreamStateError, match=f"protocol version {PROTOCOL_VERSION} and the driver version 0"
        ):
            client.register_plugin(older, name=older.name)
        assert sc.parallelize([1, 2, 3], 1).sum() == 6  # the driver of the same version is served
    finally:
        sc.stop()


UNGUARDED_SCRIPT = """
from dstream import Context

sc = Context("local-cluster[1]", "unguarded")  # at module level: each spawned worker runs it again
print("collected", sc.parallelize([1, 2, 3]).collect(), flush=True)
sc.stop()
"""


def test_a_script_without_a_main_guard_gets_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=CHILD_START_S + 120, env=env
    )
    assert done.returncode != 0 and "collected" not in done.stdout
    assert 'create the Context under `if __name__ == "__main__":`' in done.stderr  # the worker's error
    assert "local-cluster[1]: 1 worker process(es) failed to start" in done.stderr  # the driver's, at once


def _worker_settings(dask_worker: Any) -> tuple[bool, float, float]:
    import dask.config

    profiling = bool(dask.config.get("distributed.worker.profile.enabled"))
    return profiling, dask_worker._tick_interval, dask_worker.memory_manager.memory_monitor_interval


def test_the_housekeeping_intervals_the_user_set_are_kept() -> None:
    with dask.config.set({"distributed.admin.tick.interval": "200ms"}):
        assert housekeeping_intervals() == {
            k: v for k, v in HOUSEKEEPING_INTERVALS.items() if k != "distributed.admin.tick.interval"
        }
    assert housekeeping_intervals() == HOUSEKEEPING_INTERVALS  # Dask's defaults are replaced


@pytest.mark.skipif(importlib.util.find_spec("bokeh") is not None, reason="bokeh is installed")
def test_the_dashboard_without_bokeh_is_a_clear_error() -> None:
    conf = Conf().set("dstream.dask.dashboard", "true")
    with pytest.raises(DStreamValueError, match=r"dstream.dask.dashboard=true needs bokeh"):
        Context("local-cluster[1]", "dashboard", conf)
    Context("local-inline").stop()  # the failed Context did not stay active


def test_a_joined_scheduler_refuses_local_checkpoints_and_file_sinks(
    dask_master: str, tmp_path: Path
) -> None:
    sc = Context(dask_master, "refusals")
    try:
        with pytest.raises(DStreamValueError, match=r"checkpoint directory .* local disk.*sharedFilesystem"):
            sc.setCheckpointDir(str(tmp_path / "ckpt"))
        with pytest.raises(DStreamValueError, match=r"driver's memory"):
            sc.setCheckpointDir("memory://refusals/ckpt")
        with pytest.raises(DStreamValueError, match=r"output directory .* local disk"):
            sc.parallelize([1]).saveAsTextFile(str(tmp_path / "out"))
        with pytest.raises(DStreamValueError, match=r"input .* local disk"):
            sc.textFile(str(tmp_path / "in.txt"))
        ssc = StreamingContext(sc, 1.0)
        try:
            with pytest.raises(DStreamValueError, match=r"checkpoint directory .* local disk"):
                ssc.checkpoint(str(tmp_path / "ckpt"))
            with pytest.raises(DStreamValueError, match=r"saveAsTextFiles prefix .* local disk"):
                ssc.queueStream([[1]]).saveAsTextFiles(str(tmp_path / "out" / "p"))
            with pytest.raises(DStreamValueError, match=r"input directory .* local disk"):
                ssc.textFileStream(str(tmp_path / "in"))
        finally:
            ssc.stop(stopSparkContext=False)
        sc.setCheckpointDir("s3://bucket/app")  # an object store is reachable from anywhere
        assert not (tmp_path / "ckpt").exists() and not (tmp_path / "out").exists()
    finally:
        sc.stop()


@pytest.mark.chaos
def test_a_sigkilled_driver_takes_its_embedded_cluster_with_it() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "tests.backends.dask_driver_child"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as child:  # fmt: skip
        assert child.stdout is not None and child.stderr is not None
        pids: list[int] = []
        try:
            line = _read_line(child, CHILD_START_S)
            assert line.startswith(b"pids "), f"child said {line!r}: {child.stderr.read().decode()[-2000:]}"
            pids = json.loads(line.split(b" ", 1)[1])
            assert len(pids) == 2
            child.send_signal(signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
            assert wait_gone(pids) == [], "workers outlived their SIGKILLed driver"
        finally:
            child.kill()
            kill_all(pids)


def _read_line(child: subprocess.Popen[bytes], timeout_s: float) -> bytes:
    """The child's first stdout line, bounded in time (a hung child is killed, not waited on forever)."""
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(child.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout_s)
    if not got:
        child.kill()
        reader.join(30)
    return got[0] if got else b""
