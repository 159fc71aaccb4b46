"""Command groups of other packages join `dstream` through the `dstream.cli` entry point group."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import click
import pytest
from click.testing import CliRunner

from dstream.cli import main as cli_main


def test_the_chaos_group_is_discovered() -> None:
    result = CliRunner().invoke(cli_main.main, ["chaos", "--help"])
    assert result.exit_code == 0, result.output
    assert "run" in result.output and "check" in result.output


@click.command()
def hello() -> None:
    click.echo("hello from a plugin")


def fake_entry_points(points: list[EntryPoint]) -> Any:
    return lambda group: [p for p in points if p.group == group]


def test_a_declared_command_is_added_and_a_broken_one_explains_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    points = [
        EntryPoint("hello", f"{__name__}:hello", "dstream.cli"),
        EntryPoint("broken", "no_such_module_here:cmd", "dstream.cli"),
        EntryPoint("demo", f"{__name__}:hello", "dstream.cli"),  # taken: the built-in wins
    ]
    monkeypatch.setattr(cli_main, "entry_points", fake_entry_points(points))
    group = click.Group("g", commands={"demo": click.Command("demo")})
    assert cli_main.add_entry_point_commands(group) == ["broken", "hello"]
    runner = CliRunner()
    assert runner.invoke(group, ["hello"]).output == "hello from a plugin\n"
    broken = runner.invoke(group, ["broken"])
    assert broken.exit_code == 1
    assert "'broken' (no_such_module_here:cmd) could not be loaded" in broken.output
    assert "No module named 'no_such_module_here'" in broken.output
