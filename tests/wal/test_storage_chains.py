"""The registry serves chained URLs (fsspec's ``outer::inner://path``) and finds protocols by entry point."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import wal
from wal.errors import UnsupportedStorageError, WALValueError
from wal.storage import (
    DelegatingStorage,
    LocalStorage,
    Storage,
    register_storage,
    registry,
    resolve_storage,
    storage_for,
    supported_protocols,
    unregister_storage,
)
from wal.storage.registry import ENTRY_POINT_GROUP, TARGET_STORAGE_OPTION, split_url


class Wrapper(DelegatingStorage):
    def __init__(self, inner: Storage, options: Mapping[str, Any]) -> None:
        super().__init__(inner)
        self.options = dict(options)


@pytest.fixture
def wrapper_protocol() -> Any:
    register_storage("wrapper", lambda protocol, options: Wrapper(options[TARGET_STORAGE_OPTION], options))
    yield "wrapper"
    unregister_storage("wrapper")


def test_split_url_names_every_link_and_the_path() -> None:
    assert split_url("faulty::file:///p/q") == (["faulty", "file"], "/p/q")
    assert split_url("a::b::s3://bucket/k") == (["a", "b", "s3"], "bucket/k")
    assert split_url("/plain/path") == (["file"], "/plain/path")
    with pytest.raises(WALValueError, match=r"'a://x' must be a bare protocol name.*faulty::file:///"):
        split_url("a://x::file:///p")


def test_a_chained_url_wraps_the_inner_urls_storage(wrapper_protocol: str, tmp_path: Path) -> None:
    storage, path = resolve_storage(f"wrapper::file://{tmp_path}/x")
    assert isinstance(storage, Wrapper) and path == f"{tmp_path}/x"
    assert storage.inner is storage_for(str(tmp_path)) and isinstance(storage.inner, LocalStorage)
    assert storage_for(f"wrapper::file://{tmp_path}/y") is storage  # built once per process
    memory, path = resolve_storage("wrapper::memory://bucket/k")
    assert memory.inner is storage_for("memory://") and memory.kind == "memory" and path == "/bucket/k"
    with wal.open_wal(f"wrapper::file://{tmp_path}/log") as log:  # every layer takes the chain
        log.write(b"r", 1)
    assert next(p.name for p in (tmp_path / "log").iterdir()).startswith("log-")


def test_options_go_to_the_link_they_are_named_for_and_the_rest_to_the_outermost(
    wrapper_protocol: str,
) -> None:
    storage = storage_for("wrapper::memory://b/k", {"plan": {"seed": 1}, "memory": {}})
    assert isinstance(storage, Wrapper)
    assert storage.options == {"plan": {"seed": 1}, TARGET_STORAGE_OPTION: storage.inner}


def test_an_unknown_link_is_refused_naming_the_url(wrapper_protocol: str) -> None:
    with pytest.raises(UnsupportedStorageError, match=r"'wrapper::gcs://b/k'.*'gcs' is not registered"):
        storage_for("wrapper::gcs://b/k")


def test_a_protocol_declared_by_an_entry_point_is_loaded_on_first_use(tmp_path: Path) -> None:
    unregister_storage("faulty")  # forget any earlier loading: the registry must find it again
    assert "faulty" in supported_protocols()
    storage, path = resolve_storage(f"faulty::file://{tmp_path}/c")
    assert type(storage).__name__ == "FaultyStorage" and path == f"{tmp_path}/c"


def test_a_broken_entry_point_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = importlib.metadata.EntryPoint("broken", "no_such_module_x:factory", ENTRY_POINT_GROUP)

    def entry_points(**selection: str) -> list[importlib.metadata.EntryPoint]:
        return [broken] if selection.get("name") in (None, "broken") else []

    monkeypatch.setattr(registry.importlib.metadata, "entry_points", entry_points)
    with pytest.raises(UnsupportedStorageError, match=r"'no_such_module_x:factory'.*failed to load"):
        storage_for("broken:///x")
    assert "broken" in supported_protocols()
