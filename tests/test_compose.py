"""docker-compose.yml stays true to the code, without a Docker engine.

Every service command must be a real `takt` subcommand with real options, and
every TAKT_* variable a real setting (or one the edge agent's YAML reads).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from takt.cli import import_role_settings, main
from takt.settings import setting_env_names

ROOT = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
# The edge agent reads its broker URL through `url_env`/`${…}` in its YAML.
EDGE_ENV = {"TAKT_MQTT_URL"}


def takt_invocations(command: list[str] | str) -> list[list[str]]:
    """The `takt …` command lines in a service command (plain, or inside `sh -c`)."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] == ["sh", "-c"]:
        parts = re.split(r"&&|\|\||;", argv[2])
        return [shlex.split(p) for p in parts if shlex.split(p)[:1] == ["takt"]]
    return [argv] if argv[:1] == ["takt"] else []


def resolve(argv: list[str]) -> tuple[click.Command, list[str]]:
    command: click.Command = main
    args = argv[1:]
    ctx = click.Context(main)
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.get_command(ctx, args[0])
        assert sub is not None, f"`{' '.join(argv)}`: no subcommand {args[0]!r}"
        command, args = sub, args[1:]
    return command, args


def test_compose_has_the_expected_services() -> None:
    assert {"timescaledb", "mosquitto", "collector", "api", "edge"} <= set(SERVICES)
    assert SERVICES["timescaledb"]["image"].startswith("timescale/timescaledb")
    assert SERVICES["mosquitto"]["image"].startswith("eclipse-mosquitto")
    assert "./mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in SERVICES["mosquitto"]["volumes"]


@pytest.mark.parametrize("service", [s for s in SERVICES if "command" in SERVICES[s]])
def test_service_commands_are_real_takt_commands(service: str) -> None:
    invocations = takt_invocations(SERVICES[service]["command"])
    assert invocations, f"{service} runs no takt command"
    for argv in invocations:
        command, args = resolve(argv)
        runnable = not isinstance(command, click.Group) or command.invoke_without_command
        assert runnable, f"{service}: `{' '.join(argv)}` names a group"
        known = {opt for param in command.params for opt in param.opts}
        for arg in args:
            if arg.startswith("--"):
                assert arg.split("=")[0] in known, f"{service}: unknown option {arg} for `{' '.join(argv)}`"


def test_service_variables_are_real_settings() -> None:
    import_role_settings()
    known = setting_env_names() | EDGE_ENV
    for name, service in SERVICES.items():
        env = service.get("environment", {})
        for variable in env:
            if variable.startswith("TAKT_"):
                assert variable in known, f"{name}: {variable} is not a setting any role reads"


def test_broker_files_named_by_compose_are_not_committed() -> None:
    ignored = (ROOT / "deploy" / "mosquitto" / ".gitignore").read_text().split()
    assert {"passwd", "acl"} <= set(ignored)
