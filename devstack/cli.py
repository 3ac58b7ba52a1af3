"""``takt dev``: the local broker and database."""

from __future__ import annotations

from pathlib import Path

import click

from devstack.stack import DEFAULT_MQTT_PORT, DEFAULT_PG_PORT, DevStack

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".takt"),
    show_default=True,
    envvar="TAKT_STATE_DIR",
    help="Where the servers keep their data.",
)
mqtt_port_option = click.option("--mqtt-port", type=int, default=DEFAULT_MQTT_PORT, show_default=True)
pg_port_option = click.option("--pg-port", type=int, default=DEFAULT_PG_PORT, show_default=True)


@click.group()
def dev() -> None:
    """Run a real Mosquitto and PostgreSQL on loopback for development.

    Installs the OS packages when missing (apt-get), keeps data under
    --state-dir and writes the connection variables to STATE_DIR/dev.env
    (`set -a; . .takt/dev.env` loads them into a shell).
    """


@dev.command()
@state_dir_option
@mqtt_port_option
@pg_port_option
def up(state_dir: Path, mqtt_port: int, pg_port: int) -> None:
    """Start both servers (idempotent) and wait until they answer."""
    stack = DevStack(state_dir, mqtt_port=mqtt_port, pg_port=pg_port)
    status = stack.up()
    click.echo(f"mosquitto  up  mqtt://127.0.0.1:{mqtt_port}")
    click.echo(
        f"postgres   up  127.0.0.1:{pg_port}  (timescaledb: "
        f"{'yes' if stack.postgres.timescaledb_available() else 'no, plain PostgreSQL'})"
    )
    click.echo(f"variables in {stack.env_file}")
    assert status.mosquitto and status.postgres


@dev.command()
@state_dir_option
@mqtt_port_option
@pg_port_option
def down(state_dir: Path, mqtt_port: int, pg_port: int) -> None:
    """Stop both servers; their data stays in --state-dir."""
    DevStack(state_dir, mqtt_port=mqtt_port, pg_port=pg_port).down()
    click.echo("stopped")


@dev.command()
@state_dir_option
@mqtt_port_option
@pg_port_option
def status(state_dir: Path, mqtt_port: int, pg_port: int) -> None:
    """Say whether each server is running; exit 1 if one is not."""
    current = DevStack(state_dir, mqtt_port=mqtt_port, pg_port=pg_port).status()
    click.echo(f"mosquitto  {'running' if current.mosquitto else 'stopped'}")
    click.echo(f"postgres   {'running' if current.postgres else 'stopped'}")
    if not (current.mosquitto and current.postgres):
        raise SystemExit(1)
