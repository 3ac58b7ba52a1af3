"""The ``takt`` command: one subcommand per role.

Role commands live in their own packages and are imported only when used, so
``takt --help`` stays fast and the edge install does not need the cloud's
dependencies (and vice versa).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import click

from takt import __version__

# name -> "module:attribute" of a click command, imported on first use.
LAZY_COMMANDS: dict[str, str] = {
    "dev": "devstack.cli:dev",
    "broker": "broker.cli:broker",
    "demo": "devstack.demo:demo",
    "db": "takt.store.cli:db",
    "edge": "edge_agent.cli:edge",
    "collector": "collector.cli:collector",
    "api": "api.cli:api",
    "models": "models.cli:models",
    "privacy": "api.privacy_cli:privacy",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module_name, _, attr = LAZY_COMMANDS[cmd_name].partition(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name is None or exc.name.partition(".")[0] in OUR_PACKAGES:
                    raise
                return _needs_extra(cmd_name, exc.name)
            command: click.Command = getattr(module, attr)
            return command
        return super().get_command(ctx, cmd_name)


# A gateway installs `takt[edge]` only; the cloud roles' libraries are the `cloud` extra.
OUR_PACKAGES = frozenset({"takt", "edge_agent", "broker", "collector", "api", "dashboard", "models"})


def _needs_extra(cmd_name: str, missing: str) -> click.Command:
    message = (
        f"`takt {cmd_name}` needs the cloud roles' libraries ({missing} is missing): "
        "pip install 'takt[cloud]'"
    )

    @click.command(
        cmd_name,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        help=message,
        short_help="(not installed: needs the `cloud` extra)",
    )
    def unavailable() -> None:
        raise click.UsageError(message)

    return unavailable


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="takt")
def main() -> None:
    """Takt: shop-floor productivity monitor.

    Cloud roles read TAKT_* environment variables (see `takt config show`);
    edge agents read a YAML file (see `takt edge --help`).
    """


@main.group()
def config() -> None:
    """Inspect the effective configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of NAME=value lines.")
def config_show(as_json: bool) -> None:
    """Print every TAKT_* setting in effect, with secrets masked."""
    from takt.settings import ENV_PREFIX, SETTINGS_CLASSES

    import_role_settings()
    shown: dict[str, object] = {}
    for cls in SETTINGS_CLASSES:
        for name, value in cls().masked().items():
            shown[ENV_PREFIX + name.upper()] = value
    if as_json:
        click.echo(json.dumps(shown, indent=2, default=str))
    else:
        for name in sorted(shown):
            click.echo(f"{name}={shown[name]}")


def import_role_settings() -> None:
    """Import each role's settings module so it registers its TAKT_* variables."""
    for module in ("collector.settings", "api.settings"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # The role is not installed here (a gateway has no cloud extra).
            if exc.name != module and (exc.name or "").partition(".")[0] in OUR_PACKAGES:
                raise


@main.group()
def contract() -> None:
    """The edge<->cloud contract (event schema, topics)."""


@contract.command("schema")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs/schema"),
    show_default=True,
    help="Folder for the *.schema.json files.",
)
@click.option("--check", is_flag=True, help="Only check that the files are current; exit 1 if stale.")
def contract_schema(out: Path, check: bool) -> None:
    """Write (or check) the JSON Schemas of the MQTT messages."""
    from takt.contract.schema import stale_schemas, write_schemas

    if check:
        stale = stale_schemas(out)
        if stale:
            click.echo(f"stale in {out}: {', '.join(stale)}; run `takt contract schema`", err=True)
            sys.exit(1)
        click.echo(f"schemas in {out} are current")
        return
    for path in write_schemas(out):
        click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()
