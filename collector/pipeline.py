"""From MQTT messages to what one transaction writes and what it acknowledges.

Pure: no broker, no database. The writer thread calls :func:`plan_batch` on the
messages it drained, writes the :class:`Plan` in one transaction and, once
committed, acknowledges every message in it to the broker and publishes the
plan's :class:`CommitAck` per gateway. Every message ends in exactly one of:
events (new or duplicate), dead letters, or a gateway status. Nothing is
dropped silently, so nothing can loop either.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from takt.contract import (
    CommitAck,
    EnvelopeError,
    Event,
    GatewayStatus,
    PlausibilityWindow,
    TopicError,
    TopicKind,
    decode_event_batch,
    decode_status,
    parse_topic,
    seq_ranges,
)
from takt.contract.codec import raw_json
from takt.contract.events import MAX_SEQ, RejectedItem
from takt.privacy import SiteLevels
from takt.store.events import Conflict, CopyBatch, DeadLetter, SeenSeqs, batch_conflict, copy_batch

logger = logging.getLogger(__name__)

SOURCE = "mqtt"


# The plausibility window of event times, shared with HTTP ingestion.
@dataclass(frozen=True, slots=True)
class Limits:
    """What every event is checked against besides the contract: the plausibility window, privacy levels."""

    window: PlausibilityWindow
    levels: SiteLevels = field(default_factory=SiteLevels)


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message as received; ``mid``/``qos`` are what the broker needs acknowledged."""

    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 1
    generation: int = 0


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    site_id: str
    gateway_id: str
    status: GatewayStatus


@dataclass(slots=True)
class _AckBuilder:
    site_id: str
    gateway_id: str
    seqs: list[int] = field(default_factory=list)
    event_ids: list[uuid.UUID] = field(default_factory=list)
    rejected: list[RejectedItem] = field(default_factory=list)

    def build(self, committed_at: datetime) -> CommitAck:
        return CommitAck(
            gateway_id=self.gateway_id,
            seq_ranges=seq_ranges(self.seqs),
            event_ids=self.event_ids,
            rejected=self.rejected,
            committed_at=committed_at,
        )


@dataclass(slots=True)
class Plan:
    """What one transaction writes, and what it acknowledges once committed."""

    messages: list[Message] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    # gateway -> seq numbers received (stored, duplicate or dead-lettered)
    seqs: dict[str, list[int]] = field(default_factory=dict)
    # gateway -> site, for gateways heard from in this batch
    seen: dict[str, str] = field(default_factory=dict)
    events_received: int = 0
    received_by_gateway: dict[str, int] = field(default_factory=dict)
    # duplicates of each other inside this batch (not sent to the database)
    duplicates_in_batch: int = 0
    # newest event time per gateway, for the ingest-lag metric
    newest: dict[str, datetime] = field(default_factory=dict)
    _acks: dict[tuple[str, str], _AckBuilder] = field(default_factory=dict)
    # Event id -> the first event with that id in this batch (duplicates inside one batch).
    stored_ids: dict[uuid.UUID, Event] = field(default_factory=dict)
    # COPY text of ``events``, built by the planner thread so the writer's
    # critical path is mostly waiting on the database.
    copy: CopyBatch | None = None

    def acks(
        self, committed_at: datetime, conflicts: Sequence[Conflict] = ()
    ) -> list[tuple[str, str, CommitAck]]:
        """(site, gateway, ack) for every gateway that published events in this batch.

        ``conflicts``: events the write refused (their ids are stored with other
        content); acknowledged as rejected with the reason, so they are not re-sent.
        """
        for conflict in conflicts:
            builder = next(
                (b for b in self._acks.values() if b.gateway_id == conflict.gateway_id),
                None,
            )
            if builder is not None:
                builder.rejected.append(
                    RejectedItem(seq=conflict.seq, event_id=conflict.event_id, reason=conflict.reason[:500])
                )
        return [(b.site_id, b.gateway_id, b.build(committed_at)) for b in self._acks.values()]

    def ack_for(self, site_id: str, gateway_id: str) -> _AckBuilder:
        """The CommitAck being built for one gateway (made on first use)."""
        key = (site_id, gateway_id)
        builder = self._acks.get(key)
        if builder is None:
            builder = self._acks[key] = _AckBuilder(site_id, gateway_id)
        return builder


def _raw_seq(raw: Any) -> int | None:
    seq = raw.get("seq") if isinstance(raw, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq <= MAX_SEQ else None


def _raw_event_id(raw: Any) -> uuid.UUID | None:
    value = raw.get("event_id") if isinstance(raw, dict) else None
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return None
    return None


# Where an envelope is not JSON at all, the events' numbers and ids that can
# still be read in it (a truncated or corrupted batch of a gateway).
_SEQ_TEXT = re.compile(rb'"seq"\s*:\s*(\d{1,19})\b')
_ID_TEXT = re.compile(rb'"event_id"\s*:\s*"([0-9a-fA-F-]{32,36})"')


def _raw_events(payload: bytes) -> list[Any]:
    """The events of an envelope that failed as a whole, where they can still be read."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        # Not JSON: what looks like an event's seq or id is taken as one, so the
        # gateway can drop those events (the dead letter keeps the whole payload).
        found: list[Any] = [{"seq": int(m)} for m in _SEQ_TEXT.findall(payload)]
        found += [{"event_id": m.decode()} for m in _ID_TEXT.findall(payload)]
        return found
    events = doc.get("events") if isinstance(doc, dict) else None
    return events if isinstance(events, list) else []


def _reject_payload(plan: Plan, message: Message, site_id: str, gateway_id: str, reason: str) -> None:
    """Dead-letter a whole message and tell its gateway, naming what events can still be read in it.

    The ack always carries the reason, also when no event in the payload can be
    identified (an item without seq or event id).
    """
    plan.dead_letters.append(
        DeadLetter(SOURCE, reason, message.payload, topic=message.topic, gateway_id=gateway_id)
    )
    identified = [_reject(plan, site_id, gateway_id, raw, reason) for raw in _raw_events(message.payload)]
    if not any(identified):
        plan.ack_for(site_id, gateway_id).rejected.append(RejectedItem(reason=reason[:500]))


def _reject(plan: Plan, site_id: str, gateway_id: str, raw: Any, reason: str) -> bool:
    """Acknowledge an event as handled-by-dead-letter so its gateway stops re-sending it.

    False when the event carries neither a seq nor an id the gateway could match.
    """
    seq, event_id = _raw_seq(raw), _raw_event_id(raw)
    if seq is None and event_id is None:
        return False
    ack = plan.ack_for(site_id, gateway_id)
    ack.rejected.append(RejectedItem(seq=seq, event_id=event_id, reason=reason[:500]))
    if seq is not None:
        ack.seqs.append(seq)
        plan.seqs.setdefault(gateway_id, []).append(seq)
    return True


def _plan_events(
    plan: Plan, message: Message, site_id: str, gateway_id: str, now: datetime, limits: Limits
) -> None:
    plan.seen[gateway_id] = site_id
    try:
        decoded = decode_event_batch(
            message.payload,
            site_id=site_id,
            gateway_id=gateway_id,
            now=now,
            window=limits.window,
            levels=limits.levels,
        )
    except EnvelopeError as exc:
        _reject_payload(plan, message, site_id, gateway_id, f"envelope: {exc}")
        return

    ack = plan.ack_for(site_id, gateway_id)
    seqs = plan.seqs.setdefault(gateway_id, [])
    received = len(decoded.events) + len(decoded.rejected)
    plan.events_received += received
    plan.received_by_gateway[gateway_id] = plan.received_by_gateway.get(gateway_id, 0) + received
    for rejected in decoded.rejected:
        plan.dead_letters.append(
            DeadLetter(
                SOURCE,
                rejected.reason,
                raw_json(rejected.raw),
                topic=message.topic,
                gateway_id=gateway_id,
                event_index=rejected.index,
                seq=_raw_seq(rejected.raw),
            )
        )
        _reject(plan, site_id, gateway_id, rejected.raw, rejected.reason)
    stored = plan.stored_ids
    newest = plan.newest.get(gateway_id)
    for index, event in enumerate(decoded.events):
        first = stored.get(event.event_id)
        if first is None:
            stored[event.event_id] = event
            plan.events.append(event)
        elif first == event:
            plan.duplicates_in_batch += 1
        else:
            conflict = batch_conflict(first, event)
            plan.dead_letters.append(
                DeadLetter(
                    SOURCE,
                    conflict.reason,
                    conflict.payload,
                    topic=message.topic,
                    gateway_id=gateway_id,
                    event_index=index,
                    seq=event.seq,
                )
            )
            _reject(plan, site_id, gateway_id, event.model_dump(mode="json"), conflict.reason)
            continue
        if event.seq is None:
            ack.event_ids.append(event.event_id)
        else:
            ack.seqs.append(event.seq)
            seqs.append(event.seq)
        if newest is None or event.timestamp > newest:
            newest = event.timestamp
    if newest is not None:
        plan.newest[gateway_id] = newest


def _plan_status(plan: Plan, message: Message, site_id: str, gateway_id: str) -> None:
    if not message.payload:
        return  # a cleared retained message: nothing to record
    try:
        status = decode_status(message.payload)
        if status.gateway_id != gateway_id:
            raise ValueError(f"status names gateway {status.gateway_id!r}, topic {gateway_id!r}")
    except Exception as exc:  # pydantic's ValidationError, or whatever else a bad payload raises
        plan.dead_letters.append(
            DeadLetter(SOURCE, f"status: {exc}", message.payload, topic=message.topic, gateway_id=gateway_id)
        )
        return
    plan.statuses.append(StatusUpdate(site_id, gateway_id, status))


def plan_batch(messages: Sequence[Message], now: datetime, limits: Limits) -> Plan:
    """Decode and validate ``messages`` into one plan; never raises on bad input."""
    plan = Plan(messages=list(messages))
    for message in messages:
        try:
            address = parse_topic(message.topic)
        except TopicError as exc:
            plan.dead_letters.append(
                DeadLetter(SOURCE, f"topic: {exc}", message.payload, topic=message.topic)
            )
            continue
        if address.kind is TopicKind.EVENTS:
            try:
                _plan_events(plan, message, address.site_id, address.gateway_id, now, limits)
            except Exception as exc:
                # The decoder raises only EnvelopeError; anything else is a bug
                # that one message triggers: dead-letter that message, keep going.
                # What it added before failing are valid events; they stay.
                logger.exception("decoding a message on %s failed", message.topic)
                reason = f"decoder error: {type(exc).__name__}: {exc}"
                _reject_payload(plan, message, address.site_id, address.gateway_id, reason[:500])
        elif address.kind is TopicKind.STATUS:
            _plan_status(plan, message, address.site_id, address.gateway_id)
        else:
            plan.dead_letters.append(
                DeadLetter(SOURCE, "topic: not a collector topic", message.payload, topic=message.topic)
            )
    return plan


def dead_letter_plan(messages: Iterable[Message], reason: str) -> Plan:
    """A plan that dead-letters whole messages, for a payload the database itself refused."""
    plan = Plan(messages=list(messages))
    for message in plan.messages:
        try:
            address = parse_topic(message.topic)
        except TopicError:
            plan.dead_letters.append(DeadLetter(SOURCE, reason, message.payload, topic=message.topic))
            continue
        if address.kind is TopicKind.EVENTS:
            _reject_payload(plan, message, address.site_id, address.gateway_id, reason)
        else:
            plan.dead_letters.append(
                DeadLetter(
                    SOURCE, reason, message.payload, topic=message.topic, gateway_id=address.gateway_id
                )
            )
    return plan


def prepare_copy(plan: Plan, seen: SeenSeqs | None = None) -> Plan:
    """Turn the plan's events into COPY text (the writer then needs only the text).

    ``seen``: the caller's :class:`~takt.store.events.SeenSeqs`, for batches prepared
    in order; it then advances past this plan.
    """
    plan.copy = copy_batch(plan.events, seen)
    if seen is not None:
        seen.advance(plan.seqs)
    return plan


# What this decoding process has seen: plans are made in arrival order.
_DECODER_SEEN = SeenSeqs()


def plan_for_copy(raw: list[tuple[str, bytes]], now: datetime, limits: Limits) -> Plan:
    """Entry point for a decoding process: a plan small to send back.

    Events travel as COPY text only (pickling thousands of models would cost
    more than decoding them); the caller puts its own messages back.
    """
    messages = [Message(topic, payload) for topic, payload in raw]
    plan = prepare_copy(plan_batch(messages, now, limits), _DECODER_SEEN)
    plan.events = []
    plan.stored_ids = {}
    plan.messages = []
    return plan
