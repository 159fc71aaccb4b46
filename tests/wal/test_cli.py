"""`dstream wal inspect|verify|repair` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import wal
from dstream.cli.main import main
from tests.support.s3servers import StorageTarget
from tests.wal.helpers import data_files, flip_bit, open_log, read_bytes, rewrite


def make_log(target: StorageTarget, n: int = 6) -> list[wal.RecordHandle]:
    with open_log(target, rolling_interval_ms=1000) as log:
        return [log.write(f"r{i}".encode(), 1000 + 400 * i) for i in range(n)]


def options(target: StorageTarget) -> list[str]:
    return [arg for k, v in target.storage_options.items() for arg in ("-o", f"{k}={json.dumps(v)}")]


def test_inspect_lists_segments_counts_and_time_ranges(tmp_path: Path) -> None:
    target = StorageTarget("local", str(tmp_path / "log"))
    handles = make_log(target)
    result = CliRunner().invoke(main, ["wal", "inspect", target.url])
    assert result.exit_code == 0, result.output
    for segment in {h.path for h in handles}:
        assert segment in result.output
    assert "times=1000..1800" in result.output  # segment 0 ends at 2000: records 1000, 1400, 1800
    assert "total: 6 records, 0 corrupt files" in result.output


def test_verify_passes_a_torn_tail_but_fails_on_corruption(tmp_path: Path) -> None:
    target = StorageTarget("local", str(tmp_path / "log"))
    handles = make_log(target)
    last = data_files(target)[-1]
    rewrite(target, last, read_bytes(target, last)[:-3])
    torn = CliRunner().invoke(main, ["wal", "verify", target.url])
    assert torn.exit_code == 0 and "torn tail" in torn.output and "ok: 5 records" in torn.output
    first = data_files(target)[0]
    flip_bit(target, first, (handles[0].offset + 21) * 8)
    bad = CliRunner().invoke(main, ["wal", "verify", target.url])
    assert bad.exit_code == 1
    assert f"{handles[0].path}: CORRUPT at offset {handles[0].offset}" in bad.output


def test_repair_reports_the_cut_and_leaves_a_verifiable_log(s3_moto: StorageTarget) -> None:
    handles = make_log(s3_moto)
    victim = next(p for p in data_files(s3_moto) if p.endswith(handles[1].path))
    flip_bit(s3_moto, victim, (handles[1].offset + 21) * 8)
    runner = CliRunner()
    assert runner.invoke(main, ["wal", "verify", s3_moto.url, *options(s3_moto)]).exit_code == 1
    repaired = runner.invoke(main, ["wal", "repair", s3_moto.url, *options(s3_moto)])
    assert repaired.exit_code == 0, repaired.output
    assert f"of {handles[1].path} from offset 0" in repaired.output
    after = runner.invoke(main, ["wal", "verify", s3_moto.url, *options(s3_moto)])
    assert after.exit_code == 0, after.output


def test_a_malformed_storage_option_is_refused_by_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["wal", "inspect", str(tmp_path), "-o", "novalue"])
    assert result.exit_code == 2 and "'novalue'" in result.output
