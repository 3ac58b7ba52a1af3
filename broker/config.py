"""Mosquitto configuration: the limits we promise and a renderer for local brokers.

The root ``mosquitto.conf`` is the production file; ``tests/broker`` checks
that it carries the same :data:`BROKER_LIMITS` as the brokers the dev stack
and the tests start, so what is tested is what ships.
"""

from __future__ import annotations

from pathlib import Path

from takt.contract.events import MAX_PAYLOAD_BYTES

# Sized for the outage we promise (docs/delivery.md): a collector may be gone
# for up to ~50,000 queued batches before the broker drops; beyond that the
# gateways' disk buffers and end-to-end re-sends take over, so nothing is lost.
BROKER_LIMITS: dict[str, str] = {
    "persistence": "true",
    "autosave_interval": "30",
    "max_queued_messages": "50000",
    "max_queued_bytes": "1073741824",
    "max_inflight_messages": "200",
    "max_packet_size": str(MAX_PAYLOAD_BYTES + 65_536),
    "persistent_client_expiration": "14d",
    "allow_anonymous": "false",
    "per_listener_settings": "false",
}

# Set under every listener (they are listener options). The user name replaces
# the client id a client asks for, so a user can only ever hold its own
# session: a gateway login cannot take over a collector's (or another
# gateway's) client id, kick it off and inherit its queued messages.
LISTENER_SETTINGS: dict[str, str] = {
    "use_username_as_clientid": "true",
}


def listener_blocks(text: str) -> list[dict[str, list[str]]]:
    """The directives under each (uncommented) ``listener`` line of a configuration."""
    blocks: list[dict[str, list[str]]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, _, value = stripped.partition(" ")
        if key == "listener":
            blocks.append({})
        elif blocks:
            blocks[-1].setdefault(key, []).append(value.strip())
    return blocks


def parse_conf(text: str) -> dict[str, list[str]]:
    """Directive -> values, ignoring comments (directives may repeat)."""
    parsed: dict[str, list[str]] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            key, _, value = stripped.partition(" ")
            parsed.setdefault(key, []).append(value.strip())
    return parsed


def render_local_conf(
    *, port: int, data_dir: Path, password_file: Path, acl_file: Path, host: str = "127.0.0.1"
) -> str:
    """A broker for one machine: loopback listener, files under ``data_dir``."""
    lines = [
        "# Written by takt (broker/config.py); production settings are in mosquitto.conf.",
        *(f"{key} {value}" for key, value in BROKER_LIMITS.items()),
        f"persistence_location {data_dir}/",
        f"password_file {password_file}",
        f"acl_file {acl_file}",
        f"listener {port} {host}",
        *(f"{key} {value}" for key, value in LISTENER_SETTINGS.items()),
        "log_dest stdout",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
    ]
    return "\n".join(lines) + "\n"
