"""Every `takt` subcommand loads and explains itself."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from takt.cli import main


def _paths(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += _paths(command, ctx, (*prefix, name))
    return paths


ALL_COMMANDS = _paths(main, click.Context(main))


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="takt")
    assert result.exit_code == 0, result.output
    assert "Usage: takt " + " ".join(path) in result.output
    summary = result.output.split("\n\n")[1].strip()
    assert len(summary) > 10, f"`takt {' '.join(path)}` needs a help text"
