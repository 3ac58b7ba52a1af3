"""The refresher's rollup SQL and the metric queries on a real TimescaleDB engine (PGlite build).

The rollup tables are hypertables there; deleting and re-inserting a worker's
or a station's hours, and the engine's day/hour/detail queries, must work and
give the raw computation's numbers as on plain PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from api.metrics.engine import (
    cycle_times,
    model_totals,
    station_totals,
    worker_totals,
)
from takt.contract import Event
from takt.store import db
from takt.store.events import WriteMethod, copy_batch, stored_ids, write_events
from takt.store.rollups import refresh_all
from tests import oracle
from tests.timescale_lite import TimescaleLite

START = datetime(2026, 12, 7, 21, 0, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def timescale_dsn(timescale_server: TimescaleLite) -> str:
    db.upgrade(timescale_server.dsn)
    return timescale_server.dsn


def _events(prefix: str) -> list[Event]:
    kinds = ("working", "idle", "working", "absent", "product_count")
    return [
        Event(
            event_id=uuid.uuid4(),
            timestamp=START + timedelta(seconds=97 * i + (i % 7)),
            worker_id=f"{prefix}-W{i % 3}",
            station_id=f"{prefix}-S{i % 2}",
            event_type=kinds[i % 5],
            confidence=0.5 + (i % 5) / 10,
            count=i % 3 if kinds[i % 5] == "product_count" else 0,
            duration_s=300.0 if i % 11 == 0 and kinds[i % 5] != "product_count" else None,
            model_version="m@1" if i % 4 else "m@2",
            shadow=i % 13 == 0,
        )
        for i in range(240)  # about 6.5 hours across midnight
    ]


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def test_rollups_on_hypertables_equal_the_raw_computation(timescale_dsn: str) -> None:
    prefix = f"ts{uuid.uuid4().hex[:6]}"
    events = _events(prefix)
    # No server-side prepared statements: PGlite keeps one session for every connection.
    with psycopg.connect(
        timescale_dsn, autocommit=True, options="-c TimeZone=UTC", prepare_threshold=None
    ) as conn:
        hypertables = {
            row[0]
            for row in conn.execute(
                "SELECT hypertable_name FROM timescaledb_information.hypertables"
            ).fetchall()
        }
        assert {"rollup_worker_detail", "rollup_station_detail", "rollup_model_hour", "rollup_model_day"} <= (
            hypertables
        )
        # In two parts, refreshed in between: the second is late data for built hours.
        write_events(conn, events[::2], WriteMethod.UNNEST)
        refresh_all(conn, max_gap_s=600)
        write_events(conn, events[1::2], WriteMethod.UNNEST)
        refresh_all(conn, max_gap_s=600)
        windows = [
            (0, START + timedelta(minutes=13, seconds=7), START + timedelta(hours=5, minutes=41)),
            (1, START + timedelta(minutes=70), START + timedelta(minutes=71, microseconds=5)),
            (2, START - timedelta(hours=1), START + timedelta(days=1)),
        ]
        for got, want in (
            (worker_totals(conn, windows), oracle.worker_totals(conn, windows)),
            (station_totals(conn, windows), oracle.station_totals(conn, windows)),
            (model_totals(conn, windows), oracle.model_totals(conn, windows)),
        ):
            mine = {k: v for k, v in got.items() if prefix in k[1] or k[1].startswith("m@")}
            assert mine
            for key, value in mine.items():
                expected: Any = want[key]
                for name in type(value).__slots__:
                    assert _close(getattr(value, name), getattr(expected, name)), (key, name)
        for station in (f"{prefix}-S0", f"{prefix}-S1"):
            assert cycle_times(conn, windows, station_id=station) == oracle.cycle_times(
                conn, windows, station_id=station
            )


def test_the_stored_id_lookup_on_hypertables(timescale_dsn: str) -> None:
    """The direct COPY path's lookup (PGlite has no COPY, so only the lookup runs here)."""
    events = _events("probe")[:10]
    with psycopg.connect(timescale_dsn, autocommit=True) as conn:
        write_events(conn, events[:4], WriteMethod.UNNEST)
        found = stored_ids(conn, copy_batch(events))
    assert found == {e.event_id.hex.encode() for e in events[:4]}
