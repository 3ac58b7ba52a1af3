"""The event model, codec and topics: what both sides of the wire rely on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from takt.contract import (
    MAX_EVENTS_PER_BATCH,
    CommitAck,
    EnvelopeError,
    Event,
    EventType,
    GatewayState,
    GatewayStatus,
    TopicError,
    TopicKind,
    ViewHealth,
    ack_topic,
    content_event_id,
    decode_ack,
    decode_event_batch,
    decode_status,
    encode_ack,
    encode_event,
    encode_event_batch,
    encode_status,
    events_topic,
    parse_topic,
    seq_ranges,
    shared_subscription,
    timestamp_problem,
)
from takt.contract.events import origin_problem, with_origin


def raw_event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "timestamp": "2026-11-23T08:00:00Z",
        "worker_id": "W1",
        "station_id": "S1",
        "event_type": "working",
        "confidence": 0.9,
        "count": 0,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def envelope(events: list[Any], gateway_id: str = "gw-1", **extra: Any) -> bytes:
    return orjson.dumps({"schema": 1, "gateway_id": gateway_id, "events": events, **extra})


class TestEvent:
    def test_timestamp_is_normalised_to_utc(self) -> None:
        event = Event.model_validate(raw_event(timestamp="2026-11-23T10:00:00+02:00"))
        assert event.timestamp == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
        assert event.timestamp.utcoffset() == timedelta(0)

    def test_seed_field_name_workstation_id_is_accepted(self) -> None:
        data = raw_event()
        data["workstation_id"] = data.pop("station_id")
        assert Event.model_validate(data).station_id == "S1"

    def test_missing_event_id_is_derived_from_content_deterministically(self) -> None:
        data = raw_event(event_id=None)
        first, again = Event.model_validate(data), Event.model_validate(dict(data))
        other = Event.model_validate(raw_event(event_id=None, count=3))
        assert first.event_id == again.event_id
        assert first.event_id != other.event_id

    @pytest.mark.parametrize(
        "change",
        [
            {"confidence": 0.8},
            {"shadow": True},
            {"config_version": "cfg-2"},
            {"model_version": "person-yolo11s@2026.11.1"},
            {"duration_s": 1.0},
            {"seq": 7},
        ],
    )
    def test_a_derived_id_depends_on_every_field(self, change: dict[str, Any]) -> None:
        base = Event.model_validate(raw_event(event_id=None))
        assert Event.model_validate(raw_event(event_id=None, **change)).event_id != base.event_id

    def test_a_derived_id_is_taken_from_the_normalised_content(self) -> None:
        base = Event.model_validate(raw_event(event_id=None))
        same = [
            raw_event(event_id=None, timestamp="2026-11-23T10:00:00+02:00"),
            raw_event(event_id=None, shadow=False),
            {
                **{k: v for k, v in raw_event(event_id=None).items() if k != "station_id"},
                "workstation_id": "S1",
            },
        ]
        assert {Event.model_validate(d).event_id for d in same} == {base.event_id}
        assert base.event_id == content_event_id(base)

    def test_with_origin_derives_the_id_as_if_the_event_had_named_it(self) -> None:
        bare = Event.model_validate(raw_event(event_id=None))
        named = Event.model_validate(raw_event(event_id=None, site_id="s1", gateway_id="g1"))
        assert with_origin(bare, site_id="s1", gateway_id="g1") == named
        given = Event.model_validate(raw_event())
        assert with_origin(given, site_id="s1", gateway_id="g1").event_id == given.event_id
        assert origin_problem(named, site_id="s1", gateway_id="g2") is not None
        assert origin_problem(named, site_id="s1", gateway_id="g1") is None

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("timestamp", "2026-11-23T08:00:00"),  # naive
            ("event_type", "sleeping"),
            ("confidence", 1.5),
            ("confidence", -0.1),
            ("confidence", "0.9"),
            ("count", -1),
            ("count", "5"),
            ("count", 1.5),
            ("count", 2**31),
            ("seq", 2**63),
            ("duration_s", -1.0),
            ("seq", -1),
            ("worker_id", ""),
            ("station_id", "S 1"),
            ("gateway_id", "gw/1"),
            ("site_id", "+"),
            ("shadow", "yes"),
            ("model_version", "v\x001"),
        ],
    )
    def test_invalid_values_are_rejected(self, field: str, value: Any) -> None:
        with pytest.raises(ValidationError) as info:
            Event.model_validate(raw_event(**{field: value}))
        assert field in str(info.value)

    def test_unknown_fields_are_rejected(self) -> None:
        with pytest.raises(ValidationError, match="extra"):
            Event.model_validate(raw_event(colour="red"))

    def test_encode_round_trip(self) -> None:
        event = Event.model_validate(raw_event(duration_s=12.5, seq=7, model_version="m@1"))
        assert Event.model_validate_json(encode_event(event)) == event


class TestDecodeBatch:
    def test_good_batch_inherits_topic_site_and_gateway(self) -> None:
        decoded = decode_event_batch(envelope([raw_event(), raw_event()]), site_id="s1", gateway_id="gw-1")
        assert decoded.rejected == []
        assert [(e.site_id, e.gateway_id) for e in decoded.events] == [("s1", "gw-1")] * 2

    def test_bad_events_are_rejected_with_reasons_and_neighbours_kept(self) -> None:
        good_a, good_b = raw_event(seq=1), raw_event(seq=3)
        payload = envelope([good_a, raw_event(seq=2, confidence=2.0), good_b, "not an object"])
        decoded = decode_event_batch(payload, gateway_id="gw-1")
        assert [str(e.event_id) for e in decoded.events] == [good_a["event_id"], good_b["event_id"]]
        assert [(r.index, r.seq) for r in decoded.rejected] == [(1, 2), (3, None)]
        assert "confidence" in decoded.rejected[0].reason

    def test_event_naming_another_gateway_is_rejected(self) -> None:
        payload = envelope([raw_event(gateway_id="gw-2"), raw_event()])
        decoded = decode_event_batch(payload, site_id="s1", gateway_id="gw-1")
        assert len(decoded.events) == 1
        assert "gw-2" in decoded.rejected[0].reason

    @pytest.mark.parametrize(
        ("payload", "reason"),
        [
            (b"{not json", "invalid JSON"),
            (b"[]", "JSON object"),
            (orjson.dumps({"schema": 2, "gateway_id": "gw-1", "events": []}), "unsupported schema"),
            (orjson.dumps({"schema": 1, "events": []}), "gateway_id"),
            (orjson.dumps({"schema": 1, "gateway_id": "gw-1", "events": {}}), "must be a list"),
            (envelope([], extra_field=1), "unknown envelope fields"),
            (envelope([], gateway_id="gw-9"), "differs from the topic"),
        ],
    )
    def test_envelope_errors(self, payload: bytes, reason: str) -> None:
        with pytest.raises(EnvelopeError, match=reason):
            decode_event_batch(payload, gateway_id="gw-1")

    def test_limits(self) -> None:
        with pytest.raises(EnvelopeError, match="exceeds the limit"):
            decode_event_batch(envelope([raw_event()]), max_bytes=50)
        too_many = envelope([raw_event() for _ in range(3)])
        with pytest.raises(EnvelopeError, match="batch limit"):
            decode_event_batch(too_many, max_events=2)
        with pytest.raises(EnvelopeError, match="batch limit"):
            encode_event_batch("gw-1", [Event.model_validate(raw_event())] * (MAX_EVENTS_PER_BATCH + 1))

    def test_encode_decode_round_trip(self) -> None:
        events = [Event.model_validate(raw_event(seq=i, gateway_id="gw-1")) for i in range(5)]
        assert decode_event_batch(encode_event_batch("gw-1", events)).events == events


def test_timestamp_problem() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    limits = {"max_future": timedelta(minutes=5), "max_age": timedelta(days=30)}
    assert timestamp_problem(now, now, **limits) is None
    assert "future" in (timestamp_problem(now + timedelta(minutes=6), now, **limits) or "")
    assert "older" in (timestamp_problem(now - timedelta(days=31), now, **limits) or "")


@pytest.mark.parametrize(
    ("seqs", "ranges"),
    [([], []), ([5], [(5, 5)]), ([3, 1, 2, 2, 7, 8, 10], [(1, 3), (7, 8), (10, 10)])],
)
def test_seq_ranges(seqs: list[int], ranges: list[tuple[int, int]]) -> None:
    assert seq_ranges(seqs) == ranges


def test_ack_and_status_round_trip() -> None:
    ack = CommitAck(gateway_id="gw-1", seq_ranges=[(1, 3), (5, 5)], committed_at=datetime.now(UTC))
    decoded = decode_ack(encode_ack(ack))
    assert decoded == ack
    assert list(decoded.seqs()) == [1, 2, 3, 5]
    assert b'"schema":1' in encode_ack(ack)
    status = GatewayStatus(gateway_id="gw-1", state=GatewayState.ONLINE, backlog=4, future_field="x")
    assert decode_status(encode_status(status)).model_extra == {"future_field": "x"}


def test_status_reports_cameras_and_older_statuses_stay_valid() -> None:
    # What a one-camera gateway sent before the cameras list existed.
    old = (
        b'{"schema":1,"gateway_id":"gw-1","state":"online","camera_state":"ok","fps":4.9,"camera_id":"cam-1"}'
    )
    assert decode_status(old).cameras is None
    new = {
        "schema": 1,
        "gateway_id": "gw-1",
        "state": "online",
        "cameras": [
            {
                "camera_id": "cam-1",
                "frames": 120,
                "fps": 5.0,
                "last_frame_at": "2026-11-23T08:00:00+00:00",
                "health": {
                    "state": "covered",
                    "since": "2026-11-23T07:59:40Z",
                    "measures": {"contrast": 0.4},
                },
                "lens": "wide",  # newer agents may say more
            },
            {"camera_id": "cam-2", "health": {"state": "ok"}},
        ],
    }
    status = decode_status(orjson.dumps(new))
    assert status.cameras is not None
    assert [c.health.state if c.health else None for c in status.cameras] == [
        ViewHealth.COVERED,
        ViewHealth.OK,
    ]
    assert status.cameras[0].model_extra == {"lens": "wide"}
    assert decode_status(encode_status(status)) == status
    new["cameras"][1]["health"]["state"] = "dusty"
    with pytest.raises(ValidationError, match=r"cameras\.1\.health\.state"):
        decode_status(orjson.dumps(new))


class TestTopics:
    def test_build_and_parse(self) -> None:
        topic = events_topic("plant-a", "gw-1")
        assert topic == "takt/v1/plant-a/gw-1/events"
        address = parse_topic(ack_topic("plant-a", "gw-1"))
        assert (address.site_id, address.gateway_id, address.kind) == ("plant-a", "gw-1", TopicKind.ACK)
        assert shared_subscription("collectors") == "$share/collectors/takt/v1/+/+/events"

    @pytest.mark.parametrize(
        "topic", ["takt/v2/a/b/events", "takt/v1/a/b/other", "takt/v1/a/events", "takt/v1/a/+/events"]
    )
    def test_foreign_topics_are_refused(self, topic: str) -> None:
        with pytest.raises(TopicError):
            parse_topic(topic)

    def test_ids_that_would_break_the_tree_are_refused(self) -> None:
        for bad in ("a/b", "+", "#", "", "x" * 65):
            with pytest.raises(TopicError):
                events_topic(bad, "gw")


def test_event_type_values_match_seed() -> None:
    assert {t.value for t in EventType} == {"working", "idle", "absent", "product_count"}
