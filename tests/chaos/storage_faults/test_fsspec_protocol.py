"""The ``faulty`` fsspec protocol: code that reads and writes through fsspec directly meets the faults too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from chaos.storage_faults import ENV_VAR
from chaos.storage_faults.fsspec_fs import FaultyFileSystem
from dstream.context import Context
from tests.support.contexts import engine_context


def plan(*rules: dict[str, object]) -> dict[str, object]:
    return {"format": "dstream-storage-faults", "version": 1, "seed": 3, "rules": list(rules)}


@pytest.fixture(autouse=True)
def fresh_instances() -> Iterator[None]:
    FaultyFileSystem.clear_instance_cache()  # fsspec caches filesystems by their options, not the env
    yield
    FaultyFileSystem.clear_instance_cache()


@pytest.fixture
def sc() -> Iterator[Context]:
    with engine_context() as context:
        yield context


def test_a_chained_url_wraps_the_inner_filesystem(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    fs, path = fsspec.core.url_to_fs(f"faulty::file://{tmp_path}")
    assert isinstance(fs, FaultyFileSystem) and path == str(tmp_path)
    assert fs.ls(path, detail=False) == [f"{tmp_path}/a.txt"]
    assert fs.unstrip_protocol(f"{tmp_path}/a.txt") == f"faulty::file://{tmp_path}/a.txt"
    with fsspec.open(f"faulty::file://{tmp_path}/b.txt", "w") as f:
        f.write("written")
    assert (tmp_path / "b.txt").read_text() == "written"


def test_faults_come_from_the_links_options_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    url = f"faulty::file://{tmp_path}/a.txt"
    with pytest.raises(OSError, match=r"Input/output error \(injected: storage fault rule 0, open_read"):
        fsspec.open(url, "rb", faulty={"plan": plan({"fault": "error", "ops": ["open_read"]})}).open()
    monkeypatch.setenv(ENV_VAR, json.dumps(plan({"fault": "slowdown", "ops": ["read"]})))
    FaultyFileSystem.clear_instance_cache()
    with pytest.raises(OSError, match="SlowDown"):
        fsspec.filesystem("faulty").cat_file(f"{tmp_path}/a.txt")


def test_a_torn_pipe_writes_a_prefix_then_fails(tmp_path: Path) -> None:
    fs = FaultyFileSystem(plan=plan({"fault": "torn", "ops": ["publish"]}))
    with pytest.raises(OSError, match="torn write"):
        fs.pipe_file(f"{tmp_path}/x", b"0123456789" * 10)
    assert len((tmp_path / "x").read_bytes()) < 100


def test_text_files_read_and_written_by_the_engine_go_through_it(sc: Context, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("x y\nz\n")
    lines = sc.textFile(f"faulty::file://{tmp_path}/in")
    assert sorted(lines.collect()) == ["x y", "z"]
    lines.saveAsTextFile(f"faulty::file://{tmp_path}/out")
    assert (tmp_path / "out" / "_SUCCESS").exists()
    broken = plan({"fault": "error", "ops": ["open_read"]})
    with pytest.raises(Exception, match="injected"):
        sc.textFile(f"faulty::file://{tmp_path}/in", faulty={"plan": broken}).collect()
