"""Mosquitto ACL files: one block per broker user, rewritten idempotently."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from takt.contract.topics import (
    ALERTS_FILTER,
    EVENTS_FILTER,
    STATUS_FILTER,
    TOPIC_ROOT,
    ack_topic,
    check_topic_id,
    events_topic,
    site_alerts_filter,
    status_topic,
)


class Role(StrEnum):
    GATEWAY = "gateway"
    COLLECTOR = "collector"
    # The API process publishing alert incidents (docs/alerts.md).
    ALERTS = "alerts"
    # Andon lights, PLCs, wallboards: read alert incidents only.
    ANDON = "andon"


def gateway_rules(site_id: str, gateway_id: str) -> list[str]:
    """A gateway publishes only under its own prefix and reads only its own acks."""
    return [
        f"topic write {events_topic(site_id, gateway_id)}",
        f"topic write {status_topic(site_id, gateway_id)}",
        f"topic read {ack_topic(site_id, gateway_id)}",
    ]


def collector_rules() -> list[str]:
    return [
        f"topic read {EVENTS_FILTER}",
        f"topic read {STATUS_FILTER}",
        f"topic write {TOPIC_ROOT}/+/+/ack",
    ]


def alerts_rules() -> list[str]:
    """The API's alert publisher writes the incident topics of every site, nothing else."""
    return [f"topic write {ALERTS_FILTER}"]


def andon_rules(site_id: str | None = None) -> list[str]:
    """An andon reader sees the incidents of one site (or of every site), nothing else."""
    return [f"topic read {site_alerts_filter(site_id) if site_id else ALERTS_FILTER}"]


def user_role(path: Path, username: str) -> Role | None:
    """The role of an existing broker user, from its ACL block (None: no such user)."""
    _, users = read_acl(path)
    rules = users.get(username)
    if rules is None:
        return None
    if rules == collector_rules():
        return Role.COLLECTOR
    if rules == alerts_rules():
        return Role.ALERTS
    if len(rules) == 1 and rules[0].startswith("topic read ") and rules[0].endswith("/alerts/+"):
        return Role.ANDON
    return Role.GATEWAY


def check_role_change(path: Path, username: str, role: Role) -> None:
    """Refuse to turn a user of one role into the other.

    The broker uses the user name as the client id (``use_username_as_clientid``),
    so a user name is a session: a gateway created under a collector's name
    would inherit that collector's persistent session and queued messages.
    """
    existing = user_role(path, username)
    if existing is not None and existing is not role:
        raise ValueError(
            f"broker user {username!r} is a {existing.value}; a {role.value} needs a name of its own "
            "(the user name is the MQTT client id, so sharing it would share the session)"
        )


def read_acl(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """The lines before the first user block, and each user's rule lines."""
    header: list[str] = []
    users: dict[str, list[str]] = {}
    current: list[str] | None = None
    if path.exists():
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("user "):
                current = users.setdefault(stripped.split(None, 1)[1], [])
            elif current is not None:
                if stripped:
                    current.append(stripped)
            else:
                header.append(line)
    return header, users


def set_user_rules(path: Path, username: str, rules: list[str]) -> None:
    check_topic_id(username, "broker user")
    header, users = read_acl(path)
    users[username] = rules
    body = "\n".join(header).rstrip()
    blocks = [f"user {user}\n" + "\n".join(lines) for user, lines in sorted(users.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text((body + "\n\n" if body else "") + "\n\n".join(blocks) + "\n")
    tmp.chmod(0o644)
    tmp.replace(path)
