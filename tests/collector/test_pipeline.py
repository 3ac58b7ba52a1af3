"""Planning a batch: pure decode, validate and acknowledgement bookkeeping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from collector.pipeline import Limits, Message, dead_letter_plan, plan_batch
from takt.contract import Event, EventType, encode_event, encode_events_envelope, events_topic, status_topic
from takt.contract.events import PlausibilityWindow

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
LIMITS = Limits(PlausibilityWindow(max_future=timedelta(minutes=5), max_age=timedelta(days=30)))
TOPIC = events_topic("plant", "gw1")


def _event(seq: int | None, **fields: Any) -> dict[str, Any]:
    event = Event(
        event_id=uuid.uuid4(),
        timestamp=NOW - timedelta(seconds=seq or 0),
        worker_id="w1",
        station_id="s1",
        event_type=EventType.WORKING,
        confidence=0.9,
        seq=seq,
    )
    return {**orjson.loads(encode_event(event)), **fields}


def _payload(events: list[dict[str, Any]], gateway: str = "gw1") -> bytes:
    return encode_events_envelope(gateway, [orjson.dumps(e) for e in events])


def test_good_batch_is_planned_and_acknowledged_by_seq_and_id() -> None:
    events = [_event(1), _event(2), _event(3), _event(None)]
    plan = plan_batch([Message(TOPIC, _payload(events))], NOW, LIMITS)
    assert [str(e.event_id) for e in plan.events] == [e["event_id"] for e in events]
    assert plan.dead_letters == []
    assert plan.seqs == {"gw1": [1, 2, 3]}
    ((site, gateway, ack),) = plan.acks(NOW)
    assert (site, gateway) == ("plant", "gw1")
    assert ack.seq_ranges == [(1, 3)]
    assert [str(i) for i in ack.event_ids] == [events[3]["event_id"]]
    assert plan.events[0].site_id == "plant"  # inherited from the topic


def test_duplicates_within_a_batch_are_written_once_and_acknowledged() -> None:
    events = [_event(1), _event(2)]
    plan = plan_batch([Message(TOPIC, _payload(events)), Message(TOPIC, _payload(events))], NOW, LIMITS)
    assert len(plan.events) == 2
    assert plan.duplicates_in_batch == 2
    assert plan.acks(NOW)[0][2].seq_ranges == [(1, 2)]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"confidence": 1.2}, "confidence"),
        ({"confidence": "0.9"}, "confidence"),
        ({"count": -1}, "count"),
        ({"event_type": "sleeping"}, "event_type"),
        ({"timestamp": (NOW + timedelta(hours=1)).isoformat()}, "future"),
        ({"timestamp": (NOW - timedelta(days=31)).isoformat()}, "older"),
        ({"timestamp": "2026-11-23T08:00:00"}, "timestamp"),
        ({"gateway_id": "gw2"}, "published by"),
        ({"event_type": "product_count", "count": 2**31}, "count"),
        ({"model_version": "a\x00b"}, "model_version"),
    ],
)
def test_bad_event_is_dead_lettered_and_neighbours_kept(bad: dict[str, Any], reason: str) -> None:
    events = [_event(1), _event(2, **bad), _event(3)]
    plan = plan_batch([Message(TOPIC, _payload(events))], NOW, LIMITS)
    assert [e.seq for e in plan.events] == [1, 3]
    (letter,) = plan.dead_letters
    assert reason in letter.reason
    assert (letter.seq, letter.event_index, letter.topic, letter.gateway_id) == (2, 1, TOPIC, "gw1")
    assert orjson.loads(letter.payload)["seq"] == 2
    ack = plan.acks(NOW)[0][2]
    assert ack.seq_ranges == [(1, 3)]  # handled, all three
    assert [(r.seq, reason in r.reason) for r in ack.rejected] == [(2, True)]
    assert sorted(plan.seqs["gw1"]) == [1, 2, 3]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "invalid JSON"),
        (b'"a string"', "JSON object"),
        (b'{"schema": 2, "gateway_id": "gw1", "events": []}', "schema"),
        (b'{"schema": 1, "gateway_id": "gw1", "events": {}}', "list"),
        (b'{"schema": 1, "gateway_id": "gw1", "events": [], "extra": 1}', "unknown envelope"),
        (b"x" * 1_048_577, "exceeds"),
    ],
)
def test_bad_payload_is_dead_lettered_whole(payload: bytes, reason: str) -> None:
    plan = plan_batch([Message(TOPIC, payload)], NOW, LIMITS)
    assert plan.events == []
    (letter,) = plan.dead_letters
    assert reason in letter.reason and letter.payload == payload and letter.event_index is None


def test_envelope_from_another_gateway_is_rejected_but_acknowledged_to_the_publisher() -> None:
    events = [_event(7), _event(8)]
    plan = plan_batch([Message(TOPIC, _payload(events, gateway="gw9"))], NOW, LIMITS)
    assert plan.events == []
    assert len(plan.dead_letters) == 1
    ((_, gateway, ack),) = plan.acks(NOW)
    assert gateway == "gw1" and ack.seq_ranges == [(7, 8)] and len(ack.rejected) == 2


def test_status_messages_are_planned_and_bad_ones_dead_lettered() -> None:
    good = b'{"schema": 1, "gateway_id": "gw1", "state": "online", "backlog": 3, "extra": true}'
    plan = plan_batch(
        [
            Message(status_topic("plant", "gw1"), good),
            Message(status_topic("plant", "gw1"), b'{"state": "?"}'),
            Message(status_topic("plant", "gw1"), b""),
            Message("elsewhere/x", b"{}"),
        ],
        NOW,
        LIMITS,
    )
    (update,) = plan.statuses
    assert (update.site_id, update.gateway_id, update.status.backlog) == ("plant", "gw1", 3)
    assert [d.reason.split(":")[0] for d in plan.dead_letters] == ["status", "topic"]


def test_dead_letter_plan_acknowledges_identifiable_events() -> None:
    events = [_event(4), _event(5)]
    plan = dead_letter_plan([Message(TOPIC, _payload(events))], "database refused: boom")
    assert len(plan.dead_letters) == 1 and plan.events == []
    assert plan.acks(NOW)[0][2].seq_ranges == [(4, 5)]
