"""Fixtures for the sink tests: a local Context, a ManualClock, and storage on local / memory / moto S3.

One test (marked seaweedfs) runs the file sink and text output on SeaweedFS, a real S3 server;
the rest use the three fast backends to keep the suite short.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dstream.clock import ManualClock
from dstream.context import Context
from dstream.streaming import StreamingContext
from tests.support.contexts import engine_context, streaming_context
from tests.support.s3servers import StorageTarget, s3_options

WAIT_S = 30.0


def make_target(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StorageTarget:
    name = uuid.uuid4().hex[:12]
    if kind == "local":
        return StorageTarget(kind, str(tmp_path / "store"))
    if kind == "memory":
        return StorageTarget(kind, f"memory://dstream-sinks/{name}")
    server = request.getfixturevalue("moto_server" if kind == "s3-moto" else "seaweed_server")
    # fsspec's instance cache stays on (as in production): a fresh S3 client per call costs ~100 ms.
    options = {k: v for k, v in s3_options(server.endpoint).items() if k != "skip_instance_cache"}
    return StorageTarget(kind, f"s3://{server.bucket_for_test()}/{name}", options)


@pytest.fixture(params=["local", "memory", "s3-moto"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> StorageTarget:
    """Local disk, fsspec memory and moto S3 in turn."""
    return make_target(request.param, request, tmp_path)


@pytest.fixture
def sc() -> Iterator[Context]:
    with engine_context() as ctx:
        yield ctx


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(0)


@pytest.fixture
def ssc(sc: Context, clock: ManualClock) -> Iterator[StreamingContext]:
    with streaming_context(sc, clock) as context:
        yield context


def run_batches(ssc: StreamingContext, clock: ManualClock, batches: int, batch_ms: int = 1000) -> None:
    """Start (if needed) and run `batches` batches, waiting for the last one."""
    if ssc.runtime.state == "INITIALIZED":
        ssc.start()
    target = clock.time_ms() + batches * batch_ms
    clock.set_time(target)
    assert ssc.wait_for_batch(target, WAIT_S), f"batch {target} not processed"


def list_files(target: StorageTarget) -> list[str]:
    """Every file below the target's URL, as paths relative to it, fresh from the store."""
    from tests.support.raw_fs import raw_fs

    fs, root = raw_fs(target.url, target.storage_options)
    fs.invalidate_cache()
    try:
        found = fs.find(root)
    except FileNotFoundError:
        return []
    root = root.rstrip("/")
    return sorted(p[len(root) :].lstrip("/") for p in found if p.rstrip("/") != root)
