"""``takt broker``: credentials and ACL entries for a production Mosquitto."""

from __future__ import annotations

from pathlib import Path

import click

from broker.acl import (
    Role,
    alerts_rules,
    andon_rules,
    check_role_change,
    collector_rules,
    gateway_rules,
    set_user_rules,
)
from broker.passwords import generate_password, set_password

password_file_option = click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("/etc/mosquitto/passwd"),
    show_default=True,
    help="Mosquitto password_file.",
)
acl_file_option = click.option(
    "--acl-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("/etc/mosquitto/acl"),
    show_default=True,
    help="Mosquitto acl_file.",
)
password_option = click.option(
    "--password",
    envvar="TAKT_NEW_BROKER_PASSWORD",
    default=None,
    help="Use this password instead of generating one (or set TAKT_NEW_BROKER_PASSWORD).",
)


@click.group()
def broker() -> None:
    """Manage broker users: one per gateway, one per collector deployment.

    After a change, reload Mosquitto (`kill -HUP <pid>` or `systemctl reload
    mosquitto`) so it re-reads both files; connected clients stay connected.
    """


def _announce(username: str, password: str, password_was_given: bool) -> None:
    click.echo(f"user:     {username}")
    if not password_was_given:
        click.echo(f"password: {password}   (shown once; store it in the agent's environment)")


def _check_role(acl_file: Path, username: str, role: Role) -> None:
    try:
        check_role_change(acl_file, username, role)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@broker.command("add-gateway")
@click.argument("gateway_id")
@click.option("--site", "site_id", required=True, help="Site the gateway belongs to.")
@password_file_option
@acl_file_option
@password_option
def add_gateway(
    gateway_id: str, site_id: str, password_file: Path, acl_file: Path, password: str | None
) -> None:
    """Create (or rotate) GATEWAY_ID's credentials.

    The ACL lets it publish only to takt/v1/SITE/GATEWAY_ID/{events,status}
    and read only takt/v1/SITE/GATEWAY_ID/ack. The broker (use_username_as_clientid,
    in mosquitto.conf) makes GATEWAY_ID its MQTT client id too, whatever id it
    connects with, so it can never take over a collector's or another
    gateway's session; a name that belongs to a collector user is refused.
    """
    _check_role(acl_file, gateway_id, Role.GATEWAY)
    secret = password or generate_password()
    set_password(password_file, gateway_id, secret)
    set_user_rules(acl_file, gateway_id, gateway_rules(site_id, gateway_id))
    _announce(gateway_id, secret, password is not None)


@broker.command("add-collector")
@click.argument("username", default="collector")
@password_file_option
@acl_file_option
@password_option
def add_collector(username: str, password_file: Path, acl_file: Path, password: str | None) -> None:
    """Create (or rotate) a collector user: reads all events and status, writes acks.

    The user name is the collector's MQTT client id (its persistent session):
    give each collector process a user of its own (collector-1, collector-2, ...).
    """
    _check_role(acl_file, username, Role.COLLECTOR)
    secret = password or generate_password()
    set_password(password_file, username, secret)
    set_user_rules(acl_file, username, collector_rules())
    _announce(username, secret, password is not None)


@broker.command("add-alerts")
@click.argument("username", default="alerts")
@password_file_option
@acl_file_option
@password_option
def add_alerts(username: str, password_file: Path, acl_file: Path, password: str | None) -> None:
    """Create (or rotate) the user the API publishes alert incidents with (TAKT_ALERT_MQTT_URL).

    It may write takt/v1/+/alerts/+ only.
    """
    _check_role(acl_file, username, Role.ALERTS)
    secret = password or generate_password()
    set_password(password_file, username, secret)
    set_user_rules(acl_file, username, alerts_rules())
    _announce(username, secret, password is not None)


@broker.command("add-andon")
@click.argument("username", default="andon")
@click.option("--site", "site_id", default=None, help="Only this site's incidents (default: every site).")
@password_file_option
@acl_file_option
@password_option
def add_andon(
    username: str, site_id: str | None, password_file: Path, acl_file: Path, password: str | None
) -> None:
    """Create (or rotate) a read-only user for andon lights and PLCs: takt/v1/SITE/alerts/+ only."""
    _check_role(acl_file, username, Role.ANDON)
    secret = password or generate_password()
    set_password(password_file, username, secret)
    set_user_rules(acl_file, username, andon_rules(site_id))
    _announce(username, secret, password is not None)
