"""Wire codec shared by both sides: orjson bytes in and out, explicit limits.

Decoding never lets one bad event sink a batch: envelope-level problems raise
:class:`EnvelopeError`; event-level problems come back as
:class:`RejectedEvent` items beside the good events. :func:`validate_events`
is the one validation path of events for both transports (MQTT envelopes
and HTTP batches): the contract's model, then the plausibility window.
Whatever validating one event raises, not only a pydantic error, rejects that
event alone with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from takt.contract.events import (
    MAX_EVENTS_PER_BATCH,
    MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    CommitAck,
    Event,
    GatewayStatus,
    PlausibilityWindow,
)
from takt.privacy import WITHHELD, PrivacyLevel, worker_problem

_EVENT_LIST = TypeAdapter(list[Event])


class EnvelopeError(ValueError):
    """The payload as a whole cannot be read as an event batch."""


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    index: int
    raw: Any
    reason: str

    @property
    def seq(self) -> int | None:
        seq = self.raw.get("seq") if isinstance(self.raw, dict) else None
        return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    gateway_id: str
    events: list[Event] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each invalid field and why, for dead letters and HTTP errors."""
    parts = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(p) for p in item["loc"]) or "event"
        parts.append(f"{loc}: {item['msg']}")
    return "; ".join(parts)


def describe_error(error: Exception) -> str:
    """The reason a value was rejected, whatever the validator raised."""
    if isinstance(error, ValidationError):
        return describe_validation_error(error)
    return f"{type(error).__name__}: {error}"[:500]


def validate_event(raw: Any) -> Event:
    """One event through the contract; any failure is a ValueError (a pydantic error or a wrapped one)."""
    try:
        return Event.model_validate(raw)
    except ValueError:  # pydantic's ValidationError is one
        raise
    except Exception as exc:  # an overflow or a bug deep in a validator: still this event's fault
        raise ValueError(describe_error(exc)) from exc


def validate_events(
    raws: Sequence[Any],
    *,
    now: datetime | None = None,
    window: PlausibilityWindow | None = None,
    levels: Callable[[str], PrivacyLevel] | None = None,
) -> tuple[list[tuple[int, Event]], list[RejectedEvent]]:
    """Validate each item on its own: (index, event) of the good ones, and the rejected ones with reasons.

    With ``now`` and ``window``, events outside the plausibility window are
    rejected too; with ``levels`` (site id -> privacy level), events whose
    worker id breaks their site's level (:func:`takt.privacy.worker_problem`),
    with that id withheld from ``raw``. ``RejectedEvent.raw`` is otherwise the
    item as given.
    """
    rejected: list[RejectedEvent] = []
    try:
        events = list(enumerate(_EVENT_LIST.validate_python(raws)))
    except Exception:
        # Rare path: validate one by one so good neighbours survive.
        events = []
        for index, raw in enumerate(raws):
            try:
                events.append((index, validate_event(raw)))
            except Exception as exc:
                rejected.append(RejectedEvent(index, raw, describe_error(exc)))
    if levels is not None:
        events = _keep_private(events, raws, levels, rejected)
    if now is None or window is None:
        return events, rejected
    kept: list[tuple[int, Event]] = []
    for index, event in events:
        problem = window.problem(event.timestamp, now)
        if problem is None:
            kept.append((index, event))
        else:
            rejected.append(RejectedEvent(index, raws[index], problem))
    return kept, rejected


def _keep_private(
    events: list[tuple[int, Event]],
    raws: Sequence[Any],
    levels: Callable[[str], PrivacyLevel],
    rejected: list[RejectedEvent],
) -> list[tuple[int, Event]]:
    """The events whose worker id agrees with their site's level; the others join ``rejected``."""
    site_levels: dict[str, PrivacyLevel] = {}
    kept: list[tuple[int, Event]] = []
    for index, event in events:
        site = event.site_id or ""  # an event without a site: the level of the sites not named
        level = site_levels.get(site)
        if level is None:
            level = site_levels[site] = levels(site)
        problem = worker_problem(level, event.worker_id)
        if problem is None:
            kept.append((index, event))
        else:
            rejected.append(RejectedEvent(index, _withhold(raws[index]), problem))
    return kept


def _withhold(raw: Any) -> Any:
    """The item with its worker id replaced (a valid event's item is always an object)."""
    return {**raw, "worker_id": WITHHELD} if isinstance(raw, dict) else WITHHELD


def _is_withheld(raw: Any) -> bool:
    return isinstance(raw, dict) and raw.get("worker_id") == WITHHELD


def raw_json(value: Any) -> bytes:
    """Bytes of a rejected item as received, whatever it holds (orjson refuses >64-bit ints)."""
    try:
        return orjson.dumps(value, default=str)
    except TypeError:
        return json.dumps(value, default=str).encode()


def encode_event(event: Event) -> bytes:
    return event.__pydantic_serializer__.to_json(event, exclude_none=True, exclude_defaults=False)


def encode_events_envelope(gateway_id: str, encoded_events: Sequence[bytes]) -> bytes:
    """An envelope from events already encoded with :func:`encode_event` (the edge buffer keeps them so)."""
    if len(encoded_events) > MAX_EVENTS_PER_BATCH:
        raise EnvelopeError(f"{len(encoded_events)} events exceed the batch limit {MAX_EVENTS_PER_BATCH}")
    head = b'{"schema":%d,"gateway_id":%s,"events":[' % (SCHEMA_VERSION, orjson.dumps(gateway_id))
    payload = head + b",".join(encoded_events) + b"]}"
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise EnvelopeError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    return payload


def encode_event_batch(gateway_id: str, events: Iterable[Event]) -> bytes:
    return encode_events_envelope(gateway_id, [encode_event(e) for e in events])


def decode_event_batch(
    payload: bytes,
    *,
    site_id: str | None = None,
    gateway_id: str | None = None,
    max_bytes: int = MAX_PAYLOAD_BYTES,
    max_events: int = MAX_EVENTS_PER_BATCH,
    now: datetime | None = None,
    window: PlausibilityWindow | None = None,
    levels: Callable[[str], PrivacyLevel] | None = None,
) -> DecodedBatch:
    """Decode an envelope; ``site_id``/``gateway_id`` are the topic's, when known.

    Events that omit ``site_id``/``gateway_id`` inherit the topic's; events that
    name another gateway or site than the topic are rejected, and so are events
    outside the plausibility ``window`` around ``now`` when both are given, and
    events against their site's privacy level when ``levels`` is given.
    Raises only :class:`EnvelopeError`.
    """
    if len(payload) > max_bytes:
        raise EnvelopeError(f"payload of {len(payload)} bytes exceeds the limit of {max_bytes}")
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise EnvelopeError("envelope must be a JSON object")
    unknown = set(doc) - {"schema", "gateway_id", "events"}
    if unknown:
        raise EnvelopeError(f"unknown envelope fields: {sorted(unknown)}")
    if type(doc.get("schema")) is not int or doc.get("schema") != SCHEMA_VERSION:
        raise EnvelopeError(f"unsupported schema {doc.get('schema')!r}; expected {SCHEMA_VERSION}")
    envelope_gateway = doc.get("gateway_id")
    if not isinstance(envelope_gateway, str):
        raise EnvelopeError("envelope gateway_id must be a string")
    if gateway_id is not None and envelope_gateway != gateway_id:
        raise EnvelopeError(
            f"envelope gateway_id {envelope_gateway!r} differs from the topic's {gateway_id!r}"
        )
    raw_events = doc.get("events")
    if not isinstance(raw_events, list):
        raise EnvelopeError("envelope events must be a list")
    if len(raw_events) > max_events:
        raise EnvelopeError(f"{len(raw_events)} events exceed the batch limit of {max_events}")

    inherited = {"gateway_id": envelope_gateway}
    if site_id is not None:
        inherited["site_id"] = site_id
    prepared: list[Any] = [{**inherited, **raw} if isinstance(raw, dict) else raw for raw in raw_events]
    events, invalid = validate_events(prepared, now=now, window=window, levels=levels)
    # As received, without the inherited ids (a withheld worker id stays withheld).
    rejected = [
        RejectedEvent(
            r.index, _withhold(raw_events[r.index]) if _is_withheld(r.raw) else raw_events[r.index], r.reason
        )
        for r in invalid
    ]

    kept: list[Event] = []
    for index, event in events:
        if event.gateway_id != envelope_gateway or (site_id is not None and event.site_id != site_id):
            rejected.append(
                RejectedEvent(
                    index,
                    raw_events[index],
                    f"event names gateway {event.gateway_id!r} / site {event.site_id!r}, "
                    f"but was published by {envelope_gateway!r} / {site_id!r}",
                )
            )
        else:
            kept.append(event)
    rejected.sort(key=lambda r: r.index)
    return DecodedBatch(envelope_gateway, kept, rejected)


def encode_ack(ack: CommitAck) -> bytes:
    return ack.model_dump_json(by_alias=True).encode()


def decode_ack(payload: bytes) -> CommitAck:
    return CommitAck.model_validate_json(payload)


def encode_status(status: GatewayStatus) -> bytes:
    return status.model_dump_json(by_alias=True, exclude_none=True).encode()


def decode_status(payload: bytes) -> GatewayStatus:
    return GatewayStatus.model_validate_json(payload)
