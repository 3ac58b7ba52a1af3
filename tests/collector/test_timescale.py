"""The schema and writer on a real TimescaleDB engine (PGlite build).

The rest of the suite runs on plain PostgreSQL; this proves the
Timescale-specific branches of the migrations for real.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from takt.contract import Event
from takt.store import db
from takt.store.events import WriteMethod, write_events
from takt.store.rollups import apply_timescale_policies
from tests.timescale_lite import TimescaleLite


@pytest.fixture(scope="module")
def timescale_dsn(timescale_server: TimescaleLite) -> str:
    db.upgrade(timescale_server.dsn)
    return timescale_server.dsn


def test_migrations_create_a_hypertable(timescale_dsn: str) -> None:
    assert db.current_revision(timescale_dsn) == db.head_revision()
    with psycopg.connect(timescale_dsn) as conn:
        assert db.timescaledb_installed(conn)
        row = conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE hypertable_name = 'events'"
        ).fetchone()
        assert row == ("events",)


def test_idempotent_writes_on_timescale(timescale_dsn: str) -> None:
    start = datetime(2026, 11, 20, 8, tzinfo=UTC)
    events = [
        Event(
            event_id=uuid.uuid4(),
            timestamp=start + timedelta(hours=i * 7),
            worker_id="W1",
            station_id="S1",
            event_type="working",
            confidence=0.8,
            duration_s=60.0,
        )
        for i in range(6)  # spans several daily chunks
    ]
    with psycopg.connect(timescale_dsn) as conn:
        first = write_events(conn, events, WriteMethod.UNNEST)
        again = write_events(conn, events[:3], WriteMethod.UNNEST)
        stored = conn.execute(
            "SELECT count(*) FROM events WHERE event_id = ANY(%s)", ([e.event_id for e in events],)
        ).fetchone()
        chunks = conn.execute("SELECT count(*) FROM show_chunks('events')").fetchone()
    assert (first.inserted, first.duplicates) == (6, 0)
    assert (again.inserted, again.duplicates) == (0, 3)
    assert stored == (6,)
    assert chunks is not None and chunks[0] >= 2


AGGREGATE_CHECK = """
    SELECT bucket, worker_id, event_type, events, units, duration_s, confidence_min, confidence_max
    FROM {view} WHERE worker_id = %s ORDER BY bucket, event_type
"""


def _aggregate_events(worker: str) -> list[Event]:
    start = datetime(2026, 11, 21, 9, 0, 10, tzinfo=UTC)
    return [
        Event(
            event_id=uuid.uuid4(),
            timestamp=start + timedelta(seconds=20 * i),
            worker_id=worker,
            station_id="S2",
            event_type="working" if i % 3 else "idle",
            confidence=0.5 + i / 100,
            duration_s=20.0,
            model_version="m@1",
        )
        for i in range(9)  # three minutes
    ] + [
        Event(
            event_id=uuid.uuid4(),
            timestamp=start + timedelta(seconds=30),
            worker_id=worker,
            station_id="S2",
            event_type="product_count",
            confidence=0.9,
            count=4,
            model_version="m@1",
        )
    ]


def _expected(events: list[Event], unit: str) -> dict[tuple[Any, str], tuple[int, int, float]]:
    expected: dict[tuple[Any, str], tuple[int, int, float]] = {}
    for e in events:
        bucket = e.timestamp.replace(second=0, microsecond=0)
        if unit == "hour":
            bucket = bucket.replace(minute=0)
        n, units, duration = expected.get((bucket, e.event_type.value), (0, 0, 0.0))
        expected[(bucket, e.event_type.value)] = (n + 1, units + e.count, duration + (e.duration_s or 0))
    return expected


def _observed(rows: list[Any]) -> dict[tuple[Any, str], tuple[int, int, float]]:
    return {(r[0], r[2]): (int(r[3]), int(r[4]), float(r[5] or 0)) for r in rows}


def test_continuous_aggregates_match_the_events_and_take_late_data(timescale_dsn: str) -> None:
    events = _aggregate_events("W-agg")
    late = events[4]  # arrives after its bucket was materialised
    with psycopg.connect(timescale_dsn, autocommit=True) as conn:
        kinds = conn.execute(
            "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates "
            "ORDER BY view_name"
        ).fetchall()
        assert kinds == [("events_hour", False), ("events_minute", False)]
        write_events(conn, [e for e in events if e is not late], WriteMethod.UNNEST)
        for view in ("events_minute", "events_hour"):
            conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
        write_events(conn, [late], WriteMethod.UNNEST)
        # The late event's minute is already materialised: until a refresh covers
        # it, the aggregate misses it (hence the 8-day refresh window).
        before = _observed(conn.execute(AGGREGATE_CHECK.format(view="events_minute"), ("W-agg",)).fetchall())
        late_key = (late.timestamp.replace(second=0, microsecond=0), late.event_type.value)
        assert before[late_key][0] == _expected(events, "minute")[late_key][0] - 1
        for view in ("events_minute", "events_hour"):
            conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
        minute = conn.execute(AGGREGATE_CHECK.format(view="events_minute"), ("W-agg",)).fetchall()
        hour = conn.execute(AGGREGATE_CHECK.format(view="events_hour"), ("W-agg",)).fetchall()
        policies = conn.execute(
            "SELECT count(*) FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_refresh_continuous_aggregate'"
        ).fetchone()
    assert _observed(minute) == _expected(events, "minute")
    assert _observed(hour) == _expected(events, "hour")
    assert policies == (2,)


def test_compression_policies_and_a_resend_into_a_compressed_chunk(timescale_dsn: str) -> None:
    old = Event(
        event_id=uuid.uuid4(),
        timestamp=datetime(2026, 10, 1, 8, tzinfo=UTC),
        worker_id="W-old",
        station_id="S9",
        event_type="working",
        confidence=0.7,
        duration_s=30.0,
    )
    with psycopg.connect(timescale_dsn, autocommit=True) as conn:
        assert apply_timescale_policies(conn, compress_after=timedelta(days=14), retention=None)
        jobs = {
            row[0]
            for row in conn.execute(
                "SELECT hypertable_name FROM timescaledb_information.jobs "
                "WHERE proc_name = 'policy_compression'"
            ).fetchall()
        }
        write_events(conn, [old], WriteMethod.UNNEST)
        chunk = conn.execute(
            "SELECT c FROM show_chunks('events', older_than => timestamptz '2026-10-02') c"
        ).fetchone()
        assert chunk is not None
        conn.execute("SELECT compress_chunk(%s::regclass)", (chunk[0],))
        compressed = conn.execute(
            "SELECT is_compressed FROM timescaledb_information.chunks "
            "WHERE hypertable_name = 'events' AND range_end <= '2026-10-02'"
        ).fetchall()
        again = write_events(conn, [old], WriteMethod.UNNEST)  # a gateway re-sends it
        stored = conn.execute("SELECT count(*) FROM events WHERE event_id = %s", (old.event_id,)).fetchone()
    assert {"events", "rollup_hour", "rollup_station_day"} <= jobs
    assert compressed and all(row[0] for row in compressed)
    assert (again.inserted, again.duplicates) == (0, 1)
    assert stored == (1,)
