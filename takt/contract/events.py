"""Messages exchanged between gateways and the cloud, as pydantic v2 models."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
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
# Printable text only (str.isprintable): no control characters (PostgreSQL
# text cannot hold NUL), no format characters (bidirectional overrides such as
# U+202E, zero-width characters), no private-use, surrogate or unassigned code
# points, no separators but the plain space. Labels are shown in UIs and
# exported to CSV. The pattern spells out the usual offenders for the JSON
# Schema (in ranges every regex dialect reads); the validator has the full rule.
_NOT_PRINTABLE = (
    "\x00-\x1f\x7f-\xa0\xad\u061c\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f"
    "\u3000\ue000-\uf8ff\ufeff\ufff9-\ufffb"
)


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must be printable text (no control, format or separator characters)")
    return value


Label = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128),
    AfterValidator(_printable),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": 128, "pattern": f"^[^{_NOT_PRINTABLE}]+$"}
    ),
]

# Every time the system stores or is asked about lies in [MIN_TIME, MAX_TIME):
# far enough from datetime's limits (years 1 and 9999) that no derived time
# (an hour or a day later, a window's look-back, a local-time conversion) can
# overflow. Event times are further held to the plausibility window below.
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9000, 1, 1, tzinfo=UTC)
# A date first: pydantic would otherwise read "1700000000" as Unix epoch seconds.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")

# Events produced without an id (HTTP clients of the seed API) get one derived
# from their content, so a retried request maps to the same row.
CONTENT_ID_NAMESPACE = uuid.UUID("6f1c2d1e-8a4b-5b7e-9c1d-2e3f4a5b6c7d")
# Fields added to the contract after content ids existed (left out of the id when absent).
_LATER_FIELDS = ("rejected", "sku")
# Stands in for a missing id while the rest is validated (see Event._derive_missing_id).
_UNSET_ID = uuid.UUID(int=0)


class EventType(StrEnum):
    WORKING = "working"
    IDLE = "idle"
    ABSENT = "absent"
    PRODUCT_COUNT = "product_count"


STATE_EVENT_TYPES = frozenset({EventType.WORKING, EventType.IDLE, EventType.ABSENT})


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC, or ValueError: naive, not representable in UTC, or outside [MIN_TIME, MAX_TIME).

    The one rule for every time the system takes in: event timestamps (MQTT
    and HTTP) and the ``from``/``to`` of every query.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a time needs a UTC offset (e.g. 2026-11-23T08:00:00Z)")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is out of range once converted to UTC") from None
    if not MIN_TIME <= utc < MAX_TIME:
        raise ValueError(
            f"{utc.isoformat()} is outside the supported range "
            f"[{MIN_TIME.isoformat()}, {MAX_TIME.isoformat()})"
        )
    return utc


def reject_epoch_numbers(value: Any) -> Any:
    """Times are ISO 8601 strings (or datetimes): numbers and digit strings are not read as epochs."""
    if isinstance(value, bool | int | float):
        raise ValueError("a time must be an ISO 8601 string with a UTC offset, not a number")
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("a time must be ISO 8601 with a UTC offset, starting with YYYY-MM-DD")
    return value


# A time as a query parameter or API field: ISO 8601 with an offset, in the
# supported range, given back in UTC (the same rule as event timestamps).
UtcTime = Annotated[datetime, BeforeValidator(reject_epoch_numbers), AfterValidator(to_utc)]


def content_event_id(event: Event) -> uuid.UUID:
    """The id of an event sent without one: a UUIDv5 of everything else it says.

    What identifies such an event is every field of the contract but
    ``event_id``, as validated: times in UTC, ``workstation_id`` read as
    ``station_id``, defaults filled in (an omitted ``shadow`` is ``false``).
    Two events equal in all of them are one event (a retried request maps to
    the same row); any difference, a confidence, a model or configuration
    version, the shadow flag, makes them two (docs/contract.md).
    """
    # Optional fields added later (rejected, sku) count only when given, so an
    # event without them keeps the id it had before they existed.
    later = {name for name in _LATER_FIELDS if getattr(event, name) is None}
    content = event.model_dump(mode="json", exclude={"event_id", *later})
    return uuid.uuid5(CONTENT_ID_NAMESPACE, orjson.dumps(content, option=orjson.OPT_SORT_KEYS).decode())


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
    rejected: int | None = Field(
        default=None,
        ge=0,
        le=MAX_COUNT,
        strict=True,
        description=(
            "product_count only, optional: how many of `count` were rejected (good units are "
            "count - rejected). Omitted: not reported (older gateways)."
        ),
    )
    sku: EntityId | None = Field(
        default=None, description="product_count only, optional: the product (SKU) the units are of."
    )

    @model_validator(mode="after")
    def _count_fields(self) -> Event:
        counted = self.rejected is not None or self.sku is not None
        if counted and self.event_type is not EventType.PRODUCT_COUNT:
            raise ValueError("rejected and sku belong to product_count events only")
        if self.rejected is not None and self.rejected > self.count:
            raise ValueError(f"rejected ({self.rejected}) exceeds count ({self.count})")
        return self

    @model_validator(mode="before")
    @classmethod
    def _derive_missing_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("event_id") is None:
            # Validated first (a second validation, for events without id
            # only), so the id is derived from the normalised content.
            data = {**data, "event_id": _UNSET_ID}
            try:
                event = cls.model_validate(data)
            except ValidationError:
                return data  # the outer validation reports what is wrong
            data["event_id"] = content_event_id(event)
        return data

    @field_validator("timestamp", mode="before")
    @classmethod
    def _no_epoch(cls, value: Any) -> Any:
        return reject_epoch_numbers(value)

    @field_validator("timestamp")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return to_utc(value)

    @property
    def is_state(self) -> bool:
        return self.event_type in STATE_EVENT_TYPES


def with_origin(event: Event, *, site_id: str, gateway_id: str) -> Event:
    """``event`` with the origin its transport vouches for (an MQTT topic, a bound token).

    Missing ``site_id``/``gateway_id`` are filled in; an id derived from the
    content is derived again from the completed content, as if the event had
    named its origin itself. Whether the event names *another* origin is the
    caller's check (:func:`origin_problem`).
    """
    update = {
        k: v for k, v in (("site_id", site_id), ("gateway_id", gateway_id)) if getattr(event, k) is None
    }
    if not update:
        return event
    filled = event.model_copy(update=update)
    if event.event_id == content_event_id(event):
        filled = filled.model_copy(update={"event_id": content_event_id(filled)})
    return filled


def origin_problem(event: Event, *, site_id: str | None, gateway_id: str) -> str | None:
    """Why ``event`` may not come from ``gateway_id`` (at ``site_id``, when known), or None."""
    if event.gateway_id not in (None, gateway_id) or (
        site_id is not None and event.site_id not in (None, site_id)
    ):
        return (
            f"event names gateway {event.gateway_id!r} / site {event.site_id!r}, "
            f"but was sent by {gateway_id!r} / {site_id!r}"
        )
    return None


def timestamp_problem(
    timestamp: datetime, now: datetime, *, max_future: timedelta, max_age: timedelta
) -> str | None:
    """Why an event time is not plausible, or None when it is."""
    if timestamp > now + max_future:
        return f"timestamp {timestamp.isoformat()} is more than {max_future} in the future"
    if timestamp < now - max_age:
        return f"timestamp {timestamp.isoformat()} is older than {max_age}"
    return None


@dataclass(frozen=True, slots=True)
class PlausibilityWindow:
    """How far from the receiver's clock an event time may be (both transports use one)."""

    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=30)

    def problem(self, timestamp: datetime, now: datetime) -> str | None:
        return timestamp_problem(timestamp, now, max_future=self.max_future, max_age=self.max_age)


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


class ViewHealth(StrEnum):
    """Whether a camera still sees what its zones were drawn on (docs/edge-agent.md, "Camera health")."""

    OK = "ok"
    MOVED = "moved"
    COVERED = "covered"
    BLURRED = "blurred"
    FROZEN = "frozen"


class CameraHealth(BaseModel):
    """A camera's view against its reference frame. Anything but ``ok`` is an outage of that
    camera's stations: they send no state events meanwhile (unobserved time, not absence)."""

    model_config = ConfigDict(extra="allow")

    state: ViewHealth
    since: AwareDatetime | None = Field(default=None, description="When the view became this (frame time).")
    checked_at: AwareDatetime | None = Field(default=None, description="The latest check (frame time).")
    checks: int | None = Field(default=None, ge=0)
    measures: dict[str, float] | None = Field(
        default=None, description="The latest check's figures: shift_px, sharpness_ratio, edge_ratio, ..."
    )


class CameraStatus(BaseModel):
    """One camera of a gateway, in its status message (gateways with several cameras send one each)."""

    model_config = ConfigDict(extra="allow")

    camera_id: TopicId
    camera_state: str | None = Field(default=None, description="e.g. ok, reconnecting, ended")
    frames: int | None = Field(default=None, ge=0, description="Frames seen since the agent started.")
    fps: float | None = None
    last_frame_at: AwareDatetime | None = None
    detector_latency_ms: float | None = None
    dropped_frames: int | None = Field(default=None, ge=0, description="Live frames dropped, detector busy.")
    config_version: Label | None = None
    stations: list[EntityId] | None = None
    health: CameraHealth | None = Field(default=None, description="Absent where health checks are off.")
    gated: bool | None = Field(
        default=None, description="Motion-gated detection on: the detector sees only frames that need it."
    )
    detect_fps: float | None = Field(
        default=None, ge=0, description="Detector runs per second on this camera (last 10 s of frames)."
    )
    detections: int | None = Field(default=None, ge=0, description="Frames the detector saw since the start.")
    frames_gated: int | None = Field(
        default=None, ge=0, description="Frames with no motion in any zone: the last detections were reused."
    )
    frames_deferred: int | None = Field(
        default=None,
        ge=0,
        description="Frames that needed the detector but waited their turn (gateway overloaded); "
        "the last detections were reused.",
    )
    detection_age_s: float | None = Field(
        default=None, ge=0, description="Age of the detections behind the latest frame (detector lag)."
    )
    detection_age_max_s: float | None = Field(
        default=None, ge=0, description="Oldest detections any frame of the last 10 s relied on."
    )
    detector_overloaded: bool | None = Field(
        default=None,
        description="In the last 10 s frames waited for the detector and relied on detections older "
        "than the re-check interval: the gateway serves more than its detector keeps up with.",
    )


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
    cameras: list[CameraStatus] | None = Field(
        default=None,
        description="Per camera (older gateways omit it): frames, fps, last frame, "
        "view health. The top-level camera fields then describe the gateway as a whole.",
    )
