"""The schema and writer on a real TimescaleDB engine (PGlite build).

The rest of the suite runs on plain PostgreSQL; this proves the
Timescale-specific branches of the migrations for real.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from collector import db
from collector.store import WriteMethod, write_events
from takt.contract import Event
from takt.devstack.timescale_lite import TimescaleLite


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
