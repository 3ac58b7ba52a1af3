"""Messages exchanged between gateways and the cloud, as pydantic v2 models."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from takt.contract.topics import TOPIC_ID_PATTERN

SCHEMA_VERSION: Literal[1] = 1
# One MQTT message carries one envelope. Mosquitto's message_size_limit in
# mosquitto.conf is set a little above this so the collector, not the broker,
# is the one that rejects (and dead-letters) an oversized batch with a reason.
MAX_PAYLOAD_BYTES = 1_048_576
MAX_EVENTS_PER_BATCH = 2_000
MAX_DURATION_S = 86_400.0
# Bounds that also keep values inside the database columns (integer, bigint).
MAX_COUNT = 1_000_000
MAX_SEQ = 2**63 - 1

# Worker and station ids come from rosters and badge markers; they are not
# topic levels, so ':' and '@' are allowed as well.
EntityId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
]
TopicId = Annotated[str, StringConstraints(pattern=TOPIC_ID_PATTERN)]
# No control characters: PostgreSQL text cannot hold NUL, and labels are shown in UIs.
Label = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]

# Events produced without an id (HTTP clients of the seed API) get one derived
# from their content, so a retried request maps to the same row.
CONTENT_ID_NAMESPACE = uuid.UUID("6f1c2d1e-8a4b-5b7e-9c1d-2e3f4a5b6c7d")


class EventType(StrEnum):
    WORKING = "working"
    IDLE = "idle"
    ABSENT = "absent"
    PRODUCT_COUNT = "product_count"


STATE_EVENT_TYPES = frozenset({EventType.WORKING, EventType.IDLE, EventType.ABSENT})


def content_event_id(data: dict[str, Any]) -> uuid.UUID:
    """A deterministic event id from the fields that make an event what it is."""
    keys = (
        "timestamp",
        "worker_id",
        "station_id",
        "workstation_id",
        "event_type",
        "count",
        "duration_s",
        "camera_id",
        "gateway_id",
        "site_id",
        "model_version",
        "seq",
    )
    canonical = "|".join(f"{k}={data.get(k)!s}" for k in keys if data.get(k) is not None)
    return uuid.uuid5(CONTENT_ID_NAMESPACE, canonical)


class Event(BaseModel):
    """One observation of a station: a state segment or a product count.

    ``event_id`` is the idempotency key: the same id stored twice is one event.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    event_id: uuid.UUID = Field(description="Made at the edge; missing ids are derived from content.")
    timestamp: AwareDatetime = Field(description="ISO 8601 with a UTC offset; stored as UTC.")
    worker_id: EntityId = Field(description="Worker seen at the station, or 'unknown'.")
    station_id: EntityId = Field(
        validation_alias=AliasChoices("station_id", "workstation_id"),
        description="Workstation id ('workstation_id' is accepted as an alias).",
    )
    event_type: EventType
    confidence: float = Field(ge=0.0, le=1.0, strict=True, allow_inf_nan=False)
    count: int = Field(
        default=0, ge=0, le=MAX_COUNT, strict=True, description="Units, for product_count events."
    )
    duration_s: float | None = Field(
        default=None,
        ge=0.0,
        le=MAX_DURATION_S,
        strict=True,
        allow_inf_nan=False,
        description=(
            "For state events: 0 marks a state change (the state began at timestamp and is still in "
            "progress; it adds no time, later segments carry it); > 0 is a closed segment of that many "
            "seconds; absent, the state lasts until the worker's next state event (capped). "
            "See docs/metrics.md, 'States'."
        ),
    )
    model_version: Label | None = Field(default=None, description="e.g. person-yolo11n@2026.11.1")
    camera_id: TopicId | None = None
    site_id: TopicId | None = None
    gateway_id: TopicId | None = None
    seq: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEQ,
        strict=True,
        description="Per-gateway, monotonically increasing; lets the cloud prove nothing is missing.",
    )
    config_version: Label | None = Field(
        default=None, description="Short hash of the zone/threshold configuration."
    )
    shadow: bool = Field(
        default=False,
        strict=True,
        description="Produced by a candidate model in shadow mode; excluded from production metrics.",
    )

    @model_validator(mode="before")
    @classmethod
    def _derive_missing_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("event_id") is None:
            data = {**data, "event_id": content_event_id(data)}
        return data

    @field_validator("timestamp")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def is_state(self) -> bool:
        return self.event_type in STATE_EVENT_TYPES


def timestamp_problem(
    timestamp: datetime, now: datetime, *, max_future: timedelta, max_age: timedelta
) -> str | None:
    """Why an event time is not plausible, or None when it is."""
    if timestamp > now + max_future:
        return f"timestamp {timestamp.isoformat()} is more than {max_future} in the future"
    if timestamp < now - max_age:
        return f"timestamp {timestamp.isoformat()} is older than {max_age}"
    return None


class EventBatch(BaseModel):
    """The envelope published on ``takt/v1/<site>/<gateway>/events``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, alias="schema")
    gateway_id: TopicId
    events: list[Event] = Field(max_length=MAX_EVENTS_PER_BATCH)


class RejectedItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int | None = None
    event_id: uuid.UUID | None = None
    reason: str


class CommitAck(BaseModel):
    """What the collector has durably handled for one gateway.

    Handled means stored, already present (a duplicate) or dead-lettered: in
    every case the gateway may drop the event from its buffer.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, alias="schema")
    gateway_id: TopicId
    seq_ranges: list[tuple[int, int]] = Field(
        default_factory=list, description="Inclusive [first, last] ranges of handled seq numbers."
    )
    event_ids: list[uuid.UUID] = Field(
        default_factory=list, description="Handled events that carried no seq."
    )
    rejected: list[RejectedItem] = Field(
        default_factory=list, description="Handled by dead-lettering, with the reason."
    )
    committed_at: AwareDatetime

    def seqs(self) -> Iterable[int]:
        for first, last in self.seq_ranges:
            yield from range(first, last + 1)


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Compress sequence numbers into sorted, inclusive, non-overlapping ranges."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


class GatewayState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class GatewayStatus(BaseModel):
    """Retained birth message, heartbeat and last will of a gateway.

    Extra fields are kept: newer agents may report more than this collector knows.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, alias="schema")
    gateway_id: TopicId
    site_id: TopicId | None = None
    state: GatewayState
    timestamp: AwareDatetime | None = None
    agent_version: str | None = None
    model_version: str | None = None
    shadow_model_version: str | None = Field(
        default=None, description="The candidate model running in shadow mode beside model_version, if any."
    )
    camera_state: str | None = Field(default=None, description="e.g. ok, reconnecting, failed")
    fps: float | None = None
    detector_latency_ms: float | None = None
    backlog: int | None = Field(default=None, description="Events buffered and not yet acknowledged.")
    oldest_buffered_age_s: float | None = None
    dropped: int | None = Field(default=None, description="Events dropped by the buffer's size policy.")
    replaying: bool | None = Field(default=None, description="Draining a backlog after an outage.")
