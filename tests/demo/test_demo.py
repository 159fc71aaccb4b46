"""The demo's generator is replayable and its word count is exact against a plain-Python recount."""

from __future__ import annotations

from collections import Counter

import pytest
from click.testing import CliRunner

from dstream.cli.main import main
from dstream.demo import generate_lines, run_demo


def test_generated_lines_depend_only_on_seed_time_and_partition() -> None:
    kwargs = {"seed": 3, "words_per_line": 10, "vocabulary": 50}
    first = generate_lines((1000, 0, 20), **kwargs)
    assert first == generate_lines((1000, 0, 20), **kwargs)
    assert first != generate_lines((2000, 0, 20), **kwargs)
    assert first != generate_lines((1000, 1, 20), **kwargs)
    assert all(len(line.split()) == 10 for line in first)


def test_demo_counts_match_a_plain_recount(tmp_path) -> None:
    rows = list(
        run_demo(batches=3, batch_seconds=0.1, lines_per_batch=40, master="local[2]",
                 checkpoint_dir=str(tmp_path), top=3)
    )  # fmt: skip
    assert [r.records for r in rows] == [40, 40, 40]
    times = [r.batch_ms for r in rows]
    assert times == sorted(times) and len(set(times)) == 3
    expected: Counter[str] = Counter()
    for t in times:
        for partition, count in enumerate([20, 20]):
            for line in generate_lines((t, partition, count), seed=0, words_per_line=10, vocabulary=10_000):
                expected.update(line.split())
    last = rows[-1]
    assert last.distinct_words == len(expected)
    assert last.top_words == sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[:3]


def test_demo_rejects_bad_batch_count() -> None:
    with pytest.raises(ValueError, match="batches must be >= 1, got 0"):
        next(run_demo(batches=0))


def test_cli_demo_runs_and_exits(tmp_path) -> None:
    result = CliRunner().invoke(
        main, ["demo", "--batches", "2", "--batch-seconds", "0.1", "--lines-per-batch", "30",
               "--master", "local[2]", "--checkpoint", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 batches, 60 lines" in result.output
