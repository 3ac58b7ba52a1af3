"""The versioned MQTT topic tree.

``takt/v1/<site_id>/<gateway_id>/events``  gateway -> cloud, event batches (QoS 1)
``takt/v1/<site_id>/<gateway_id>/status``  gateway -> cloud, retained birth / last will / heartbeat
``takt/v1/<site_id>/<gateway_id>/ack``     cloud -> gateway, commit acknowledgements (QoS 1)
``takt/v1/<site_id>/alerts/<incident_id>``   cloud -> andon lights, PLCs: one retained message per
                                           open incident, cleared when it resolves (docs/alerts.md)

``alerts`` is therefore not a valid gateway id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

TOPIC_ROOT = "takt/v1"
EVENTS_FILTER = f"{TOPIC_ROOT}/+/+/events"
STATUS_FILTER = f"{TOPIC_ROOT}/+/+/status"
ALERTS_LEVEL = "alerts"
ALERTS_FILTER = f"{TOPIC_ROOT}/+/{ALERTS_LEVEL}/+"

# Site and gateway ids become topic levels and broker user names, so they may
# not contain MQTT wildcards, separators or white space.
TOPIC_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_TOPIC_ID = re.compile(TOPIC_ID_PATTERN)


class TopicError(ValueError):
    """A topic or topic id that is not part of the Takt topic tree."""


class TopicKind(StrEnum):
    EVENTS = "events"
    STATUS = "status"
    ACK = "ack"


@dataclass(frozen=True, slots=True)
class TopicAddress:
    site_id: str
    gateway_id: str
    kind: TopicKind


def check_topic_id(value: str, what: str = "id") -> str:
    if not _TOPIC_ID.match(value):
        raise TopicError(
            f"{what} {value!r} is not valid: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_gateway_id(value: str) -> str:
    check_topic_id(value, "gateway id")
    if value == ALERTS_LEVEL:
        raise TopicError(f"gateway id {value!r} is reserved for the alerts topics")
    return value


def _topic(site_id: str, gateway_id: str, kind: TopicKind) -> str:
    check_topic_id(site_id, "site id")
    check_gateway_id(gateway_id)
    return f"{TOPIC_ROOT}/{site_id}/{gateway_id}/{kind.value}"


def events_topic(site_id: str, gateway_id: str) -> str:
    return _topic(site_id, gateway_id, TopicKind.EVENTS)


def status_topic(site_id: str, gateway_id: str) -> str:
    return _topic(site_id, gateway_id, TopicKind.STATUS)


def ack_topic(site_id: str, gateway_id: str) -> str:
    return _topic(site_id, gateway_id, TopicKind.ACK)


def alerts_topic(site_id: str, incident_id: int) -> str:
    """The retained topic of one incident: ``takt/v1/<site>/alerts/<incident_id>``."""
    check_topic_id(site_id, "site id")
    return f"{TOPIC_ROOT}/{site_id}/{ALERTS_LEVEL}/{int(incident_id)}"


def site_alerts_filter(site_id: str) -> str:
    """What an andon board of one site subscribes to."""
    check_topic_id(site_id, "site id")
    return f"{TOPIC_ROOT}/{site_id}/{ALERTS_LEVEL}/+"


def shared_subscription(group: str, topic_filter: str = EVENTS_FILTER) -> str:
    """An MQTT v5 shared subscription: members of ``group`` split the messages."""
    check_topic_id(group, "share group")
    return f"$share/{group}/{topic_filter}"


def parse_topic(topic: str) -> TopicAddress:
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_ROOT:
        raise TopicError(f"topic {topic!r} is not under {TOPIC_ROOT}/<site>/<gateway>/<kind>")
    _, _, site_id, gateway_id, kind = parts
    try:
        topic_kind = TopicKind(kind)
    except ValueError:
        raise TopicError(f"topic {topic!r} has unknown kind {kind!r}") from None
    check_topic_id(site_id, "site id")
    check_topic_id(gateway_id, "gateway id")
    return TopicAddress(site_id, gateway_id, topic_kind)
