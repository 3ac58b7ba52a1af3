"""The collector service in-process against real Mosquitto and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from prometheus_client import generate_latest

from collector.service import Collector, CollectorError
from takt.contract import (
    CameraHealth,
    CameraStatus,
    EventType,
    GatewayState,
    GatewayStatus,
    ViewHealth,
    encode_event,
    encode_events_envelope,
    encode_status,
    status_topic,
)
from takt.store.audit import open_gaps
from tests.collector.conftest import event_counts, metric, stored_ids, wait_for
from tests.collector.gateway_sim import GatewaySim

pytestmark = pytest.mark.wallclock  # dates computed from now; scripts/moved_clock.py moves the clock


def test_batches_are_stored_once_and_acknowledged(
    start_collector: Callable[..., Collector], gateways: Callable[..., GatewaySim], database: str
) -> None:
    collector = start_collector()
    gw1, gw2 = gateways("gw-a"), gateways("gw-b")
    gw1.send(gw1.make_events(1500))
    gw2.send(gw2.make_events(700))

    assert gw1.wait_acked() and gw2.wait_acked()
    assert event_counts(database) == (2200, 2200)
    assert stored_ids(database) == gw1.sent_ids | gw2.sent_ids
    assert gw1.acked_seqs == set(range(1, 1501))
    assert metric(collector, "takt_collector_events_written_total") == 2200
    assert metric(collector, "takt_collector_events_received_total", gateway="gw-a") == 1500
    with psycopg.connect(database) as conn:
        assert open_gaps(conn) == {}
        seen = conn.execute("SELECT gateway_id, last_seen IS NOT NULL FROM gateways ORDER BY 1").fetchall()
        assert seen == [("gw-a", True), ("gw-b", True)]
        # Unknown workers are registered on first sight, flagged as such.
        assert conn.execute("SELECT count(*) FROM workers WHERE NOT registered").fetchone() != (0,)
    assert b"takt_collector_batch_commit_seconds_count" in generate_latest(collector.metrics.registry)


def test_duplicate_flood_stores_each_event_once(
    start_collector: Callable[..., Collector], gateways: Callable[..., GatewaySim], database: str
) -> None:
    collector = start_collector()
    gw = gateways("gw-dup", batch_size=250)
    events = gw.make_events(1000)
    for _ in range(3):
        gw.send(events)
    assert gw.wait_acked()
    assert wait_for(
        lambda: metric(collector, "takt_collector_events_received_total", gateway="gw-dup") >= 3000
    )
    assert event_counts(database) == (1000, 1000)
    assert metric(collector, "takt_collector_duplicates_skipped_total") >= 2000 - 1
    with psycopg.connect(database) as conn:
        ranges = conn.execute("SELECT first_seq, last_seq FROM gateway_seq_ranges").fetchall()
    assert ranges == [(1, 1000)]


def test_open_gaps_are_reported(
    start_collector: Callable[..., Collector], gateways: Callable[..., GatewaySim], database: str
) -> None:
    collector = start_collector()
    gw = gateways("gw-gap")
    events = gw.make_events(50)
    gw.send(events[:10] + events[20:])  # seq 11..20 never sent
    assert gw.wait_acked()
    with psycopg.connect(database) as conn:
        assert open_gaps(conn) == {"gw-gap": [(11, 20)]}
    assert wait_for(lambda: metric(collector, "takt_collector_seq_gap_events", gateway="gw-gap") == 10)
    gw.send(events[10:20])
    assert gw.wait_acked()
    with psycopg.connect(database) as conn:
        assert open_gaps(conn) == {}


def test_status_is_upserted_into_gateways(
    start_collector: Callable[..., Collector],
    gateways: Callable[..., GatewaySim],
    database: str,
    site_id: str,
) -> None:
    start_collector()
    gw = gateways("gw-status")
    status = GatewayStatus(
        gateway_id="gw-status",
        site_id=site_id,
        state=GatewayState.ONLINE,
        timestamp=datetime.now(UTC),
        backlog=7,
        # A camera whose view is wrong: its health is kept with the gateway's status.
        cameras=[CameraStatus(camera_id="cam-1", frames=9, health=CameraHealth(state=ViewHealth.COVERED))],
    )
    gw.client.publish(status_topic(site_id, "gw-status"), encode_status(status), qos=1, retain=True)

    def stored() -> tuple[Any, ...] | None:
        with psycopg.connect(database) as conn:
            return conn.execute(
                "SELECT site_id, state, status->>'backlog', status->'cameras'->0->'health'->>'state' "
                "FROM gateways WHERE gateway_id = 'gw-status'"
            ).fetchone()

    assert wait_for(lambda: stored() is not None)
    assert stored() == (site_id, "online", "7", "covered")
    gw.client.publish(status_topic(site_id, "gw-status"), b"", qos=1, retain=True)  # clear retained


# -- bad input: each kind is dead-lettered, acknowledged, and its neighbours kept --------------


def _good(gw: GatewaySim) -> dict[str, Any]:
    return orjson.loads(encode_event(gw.make_events(1)[0]))


def _bad_event_cases(gw: GatewaySim) -> list[tuple[str, dict[str, Any]]]:
    now = datetime.now(UTC)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("wrong type", {**_good(gw), "confidence": "0.9"}),
        ("unknown event type", {**_good(gw), "event_type": "dancing"}),
        ("confidence above 1", {**_good(gw), "confidence": 1.5}),
        ("negative count", {**_good(gw), "event_type": "product_count", "count": -3}),
        ("future timestamp", {**_good(gw), "timestamp": (now + timedelta(hours=2)).isoformat()}),
        ("ancient timestamp", {**_good(gw), "timestamp": (now - timedelta(days=400)).isoformat()}),
        ("other gateway", {**_good(gw), "gateway_id": "gw-someone-else"}),
        ("unknown field", {**_good(gw), "colour": "red"}),
        ("count beyond column", {**_good(gw), "event_type": "product_count", "count": 2**40}),
    ]
    return cases


def test_bad_events_are_dead_lettered_and_good_neighbours_kept(
    start_collector: Callable[..., Collector], gateways: Callable[..., GatewaySim], database: str
) -> None:
    collector = start_collector()
    gw = gateways("gw-bad")
    cases = _bad_event_cases(gw)
    good = [_good(gw) for _ in range(len(cases))]
    mixed: list[dict[str, Any]] = []
    for (_, bad), ok in zip(cases, good, strict=True):
        mixed += [ok, bad]
    gw.publish_raw(encode_events_envelope("gw-bad", [orjson.dumps(e) for e in mixed]))

    bad_seqs = {bad["seq"] for _, bad in cases}
    assert wait_for(lambda: bad_seqs <= set(gw.rejected))
    assert stored_ids(database) == {uuid.UUID(e["event_id"]) for e in good}
    with psycopg.connect(database) as conn:
        letters = conn.execute(
            "SELECT seq, reason, topic, payload, received_at FROM dead_letters ORDER BY seq"
        ).fetchall()
    assert {row[0] for row in letters} == bad_seqs
    for seq, reason, topic, payload, received_at in letters:
        assert reason and topic == gw.topic and received_at is not None
        assert orjson.loads(payload)["seq"] == seq
    assert metric(collector, "takt_collector_dead_letters_total", kind="event") == len(cases)
    # The collector is still working.
    gw.send(gw.make_events(10))
    assert gw.wait_acked()


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("invalid json", b'{"schema": 1, "gateway_id": '),
        ("not an envelope", b"[1, 2, 3]"),
        ("wrong schema", b'{"schema": 99, "gateway_id": "gw-env", "events": []}'),
        ("gateway differs from topic", None),
        ("oversized", None),
    ],
)
def test_bad_payloads_are_dead_lettered_whole(
    start_collector: Callable[..., Collector],
    gateways: Callable[..., GatewaySim],
    database: str,
    kind: str,
    payload: bytes | None,
) -> None:
    collector = start_collector()
    gw = gateways("gw-env")
    events = gw.make_events(3)
    if kind == "gateway differs from topic":
        payload = encode_events_envelope("gw-other", [encode_event(e) for e in events])
    elif kind == "oversized":
        # Over the contract's 1 MiB, under the broker's packet limit: the collector must refuse it.
        padding = {**orjson.loads(encode_event(events[0])), "model_version": "x" * 400}
        one = orjson.dumps(padding)
        payload = b'{"schema":1,"gateway_id":"gw-env","events":[%s]}' % b",".join(
            [one] * (1_060_000 // len(one))
        )
        assert 1_048_576 < len(payload) < 1_114_112
    assert payload is not None
    gw.publish_raw(payload)
    later = gw.make_events(5)
    gw.send(later)  # a good neighbour right behind it

    assert gw.wait_acked()
    assert wait_for(lambda: metric(collector, "takt_collector_dead_letters_total", kind="payload") == 1)
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT payload, topic, reason, event_index FROM dead_letters").fetchall()
    assert len(rows) == 1
    assert bytes(rows[0][0]) == payload and rows[0][1] == gw.topic and rows[0][3] is None
    assert stored_ids(database) == {e.event_id for e in later}
    if kind in ("gateway differs from topic", "oversized"):
        # The events inside were identifiable: the gateway is told they are handled.
        assert {e.seq for e in events[:1]} <= set(gw.rejected)


def test_bad_status_is_dead_lettered(
    start_collector: Callable[..., Collector],
    gateways: Callable[..., GatewaySim],
    database: str,
    site_id: str,
) -> None:
    start_collector()
    gw = gateways("gw-st")
    gw.client.publish(status_topic(site_id, "gw-st"), b'{"state": "confused"}', qos=1)

    def letters() -> int:
        with psycopg.connect(database) as conn:
            row = conn.execute("SELECT count(*) FROM dead_letters WHERE reason LIKE 'status:%'").fetchone()
        return int(row[0]) if row else 0

    assert wait_for(lambda: letters() == 1)


def test_event_type_states_are_stored_with_their_values(
    start_collector: Callable[..., Collector], gateways: Callable[..., GatewaySim], database: str
) -> None:
    start_collector()
    gw = gateways("gw-values")
    event = gw.make_events(1, event_type=EventType.PRODUCT_COUNT, count=4, duration_s=None)[0]
    gw.send([event])
    assert gw.wait_acked()
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT event_type, count, seq, gateway_id, site_id FROM events").fetchone()
    assert row == ("product_count", 4, 1, "gw-values", gw.site_id)


def test_unnest_write_method_for_engines_without_copy(
    start_collector: Callable[..., Collector], gateways: Callable[..., GatewaySim], database: str
) -> None:
    start_collector(collector_write_method="unnest")
    gw = gateways("gw-unnest")
    events = gw.make_events(300)
    gw.send(events)
    gw.send(events[:100])
    assert gw.wait_acked()
    assert event_counts(database) == (300, 300)


@pytest.mark.parametrize("damage", ["password", "user"])
def test_refused_credentials_stop_the_collector_with_a_clear_error(
    start_collector: Callable[..., Collector], collector_user_url: Callable[[str], str], damage: str
) -> None:
    name = f"col-{uuid.uuid4().hex[:8]}"
    url = collector_user_url(name)
    if damage == "password":
        bad = url.replace(f"{name}:", f"{name}:wrong", 1)
    else:
        bad = url.replace(name, "nobody", 1)
    collector = start_collector(collector_client_id=name, mqtt_url=bad)
    started = time.monotonic()
    refused = r"broker refused the collector .*CONNACK reason 0x8[67]"
    with pytest.raises(CollectorError, match=refused) as info:
        collector.wait(15)
    assert time.monotonic() - started < 15  # stopped at the refusal, not after retrying
    assert "check the user name and password" in str(info.value)
