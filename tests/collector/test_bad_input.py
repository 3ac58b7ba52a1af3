"""Hostile or broken input over MQTT: dead-lettered with a reason, neighbours kept, nothing stops.

Real Mosquitto, PostgreSQL and collector (as a `takt collector` process where
a dying thread is the failure being guarded against).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import psycopg

from collector.service import Collector
from devstack.system import free_port
from takt.contract import encode_event, encode_events_envelope
from tests.collector.conftest import CollectorProcess, stored_ids, wait_for
from tests.collector.gateway_sim import GatewaySim


def _event(gw: GatewaySim, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "timestamp": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
        "worker_id": "X",
        "station_id": "S",
        "event_type": "working",
        "confidence": 0.9,
        "seq": gw.next_seq,
    }
    gw.next_seq += 1
    body.update(fields)
    return body


# (what is wrong, the fields that make it so, a word the reason must contain)
BAD_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("overflows when converted to UTC", {"timestamp": "0001-01-01T00:00:00+01:00"}, "out of range"),
    ("year 1 in UTC", {"timestamp": "0001-01-01T00:00:00Z"}, "outside the supported range"),
    ("the last hour of year 9999", {"timestamp": "9999-12-31T23:00:00Z"}, "outside the supported range"),
    ("a year in the future", {"timestamp": "2999-01-01T00:00:00Z"}, "in the future"),
    ("Unix epoch integer", {"timestamp": 1_700_000_000}, "not a number"),
    ("Unix epoch as a string", {"timestamp": "1700000000"}, "ISO 8601"),
    ("bidirectional override", {"model_version": "yolo\u202e1.txt"}, "model_version"),
    ("control character", {"config_version": "abc\x07"}, "config_version"),
]


def test_overflowing_and_extreme_timestamps_are_dead_lettered_per_event(
    collector_process: Callable[..., CollectorProcess], gateways: Callable[..., GatewaySim], database: str
) -> None:
    collector = collector_process()
    collector.start()
    gw = gateways("gw-hostile")
    items: list[dict[str, Any]] = []
    bad: dict[int, str] = {}
    good: list[dict[str, Any]] = []
    for _, fields, word in BAD_FIELDS:
        ok, wrong = _event(gw), _event(gw, **fields)
        bad[wrong["seq"]] = word
        good.append(ok)
        items += [wrong, ok]
    gw.publish_raw(encode_events_envelope(gw.gateway_id, [orjson.dumps(e) for e in items]))

    every_seq = {e["seq"] for e in items}
    assert wait_for(lambda: every_seq <= gw.acked_seqs), "the envelope was never acknowledged"
    assert set(gw.rejected) == set(bad)
    for seq, word in bad.items():
        assert word in gw.rejected[seq], (seq, gw.rejected[seq])
    assert stored_ids(database) == {uuid.UUID(e["event_id"]) for e in good}
    with psycopg.connect(database) as conn:
        letters = dict(conn.execute("SELECT seq, reason FROM dead_letters").fetchall())
    assert set(letters) == set(bad)
    # The collector process (its writer and planner) is alive and keeps storing.
    assert collector.process is not None and collector.process.poll() is None
    later = gw.make_events(20)
    gw.send(later)
    assert gw.wait_acked(30)
    assert {e.event_id for e in later} <= stored_ids(database)
    assert collector.process.poll() is None


def test_a_lone_overflowing_event_does_not_stop_the_collector_across_restarts(
    collector_process: Callable[..., CollectorProcess], gateways: Callable[..., GatewaySim], database: str
) -> None:
    """The issue's reproduction: one bad event, then a restart; the next batch is still stored."""
    collector = collector_process()
    collector.start()
    gw = gateways("gw-repro")
    bad = _event(gw, timestamp="0001-01-01T00:00:00+01:00")
    gw.publish_raw(encode_events_envelope(gw.gateway_id, [orjson.dumps(bad)]))
    assert wait_for(lambda: bad["seq"] in gw.rejected)
    assert collector.terminate() == 0
    collector.start()
    events = gw.make_events(5)
    gw.send(events)
    assert gw.wait_acked(30)
    assert stored_ids(database) == {e.event_id for e in events}


def test_envelopes_that_are_not_json_are_acknowledged_with_the_reason(
    start_collector: Callable[..., Collector], gateways: Callable[..., GatewaySim], database: str
) -> None:
    start_collector()
    gw = gateways("gw-garbled")
    first, second = gw.make_events(2)
    # A batch cut short: the events it names are handled (dead-lettered whole).
    whole = encode_events_envelope(gw.gateway_id, [encode_event(first), encode_event(second)])
    gw.publish_raw(whole[: len(whole) - 5])
    assert wait_for(lambda: {first.seq, second.seq} <= set(gw.rejected))
    assert gw.rejected[first.seq].startswith("envelope: invalid JSON")
    assert {first.seq, second.seq} <= gw.acked_seqs

    # Nothing in it can be identified: the ack still says why.
    acks_before = len(gw.acks)
    gw.publish_raw(b"\xff\xfe not json at all")
    assert wait_for(lambda: len(gw.acks) > acks_before)
    reasons = [item.reason for ack in gw.acks[acks_before:] for item in ack.rejected if item.seq is None]
    assert reasons and reasons[0].startswith("envelope: invalid JSON")
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT count(*) FROM dead_letters WHERE reason LIKE 'envelope: invalid JSON%'")
        assert row.fetchone() == (2,)
    # And the collector goes on.
    later = gw.make_events(3)
    gw.send(later)
    assert gw.wait_acked(30)
    assert stored_ids(database) == {e.event_id for e in later}


def _queue_poison(conn: psycopg.Connection[Any]) -> None:
    """What older code let in: invalidations of year 1 (before year 1 in UTC), and an event whose
    stored duration no time arithmetic can hold (written by hand, as another writer could)."""
    for ts in ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z", "9999-12-31T23:00:00Z"):
        conn.execute(
            "INSERT INTO event_invalidations (worker_id, station_id, min_ts, max_ts) "
            "VALUES ('W-old', 'S-old', %s::timestamptz, %s::timestamptz)",
            (ts, ts),
        )
    conn.execute(
        "INSERT INTO events (event_id, ts, worker_id, station_id, event_type, confidence, duration_s) "
        "VALUES (%s, now() - interval '2 hours', 'W-huge', 'S-huge', 'working', 0.9, 1e300)",
        (uuid.uuid4(),),
    )
    conn.execute(
        "INSERT INTO event_invalidations (worker_id, station_id, min_ts, max_ts) "
        "VALUES ('W-huge', 'S-huge', now() - interval '2 hours', now() - interval '2 hours')"
    )


def _rolled_up(conn: psycopg.Connection[Any], worker: str) -> bool:
    row = conn.execute("SELECT count(*) FROM rollup_worker_hour WHERE worker_id = %s", (worker,)).fetchone()
    return bool(row and row[0])


def test_refresher_quarantines_poisoned_invalidations_and_carries_on(
    collector_process: Callable[..., CollectorProcess],
    gateways: Callable[..., GatewaySim],
    conn: psycopg.Connection[Any],
) -> None:
    _queue_poison(conn)
    port = free_port()
    collector = collector_process(
        TAKT_COLLECTOR_REFRESH_INTERVAL_S="0.2", TAKT_COLLECTOR_METRICS_PORT=str(port)
    )
    collector.start()
    gw = gateways("gw-refresh")
    gw.send(gw.make_events(5, worker_id="W-good"))
    assert gw.wait_acked(30)
    assert wait_for(lambda: _rolled_up(conn, "W-good")), "the refresher stopped"
    rows = conn.execute("SELECT worker_id, reason FROM event_invalidations_quarantine ORDER BY id").fetchall()
    assert [w for w, _ in rows] == ["W-old", "W-old", "W-old", "W-huge"]
    assert all("outside" in reason for w, reason in rows if w == "W-old")
    assert "Error" in rows[3][1]

    def scraped(line: str) -> bool:
        return line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines()

    assert wait_for(lambda: scraped('takt_background_quarantined_total{task="rollup-refresher"} 4.0'))
    assert scraped('takt_background_round_failures_total{task="rollup-refresher"} 1.0')
    # Still running: a later event is rolled up too, and so after a restart.
    gw.send(gw.make_events(1, worker_id="W-later"))
    assert gw.wait_acked(30)
    assert wait_for(lambda: _rolled_up(conn, "W-later"))
    assert collector.terminate() == 0
    collector.start()
    gw.send(gw.make_events(1, worker_id="W-restart"))
    assert gw.wait_acked(30)
    assert wait_for(lambda: _rolled_up(conn, "W-restart"))
    assert conn.execute("SELECT count(*) FROM event_invalidations").fetchone() == (0,)
