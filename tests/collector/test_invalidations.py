"""The invalidation queue holds one row per worker, station and hour (migration 0008), and the
metric settings the rollups were derived with are stored with them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from takt.contract import Event, EventType
from takt.store.db import MetricSettingsError, require_metric_settings, upgrade
from takt.store.events import write_events
from takt.store.rollups import refresh_all

T0 = datetime(2026, 11, 23, 8, 10, tzinfo=UTC)


def _event(ts: datetime, worker: str = "W1", station: str = "S1", kind: str = "working") -> Event:
    return Event(
        event_id=uuid.uuid4(),
        timestamp=ts,
        worker_id=worker,
        station_id=station,
        event_type=EventType(kind),
        confidence=0.9,
    )


def _queue(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT id, worker_id, station_id, min_ts, max_ts FROM event_invalidations ORDER BY worker_id, min_ts"
    ).fetchall()


def test_batches_of_one_key_hour_share_one_row_that_a_consumed_id_does_not_delete(
    conn: psycopg.Connection[Any],
) -> None:
    # One transaction: one second (the queue's slot), as batches written close together share.
    with conn.transaction():
        write_events(conn, [_event(T0), _event(T0 + timedelta(seconds=5), worker="W2")])
        (first, _, _, lo, hi), _ = _queue(conn)
        assert (lo, hi) == (T0, T0)
        # Later batches of the same worker-hour widen the row (both ways) and renumber it.
        write_events(conn, [_event(T0 + timedelta(seconds=30))])
        write_events(conn, [_event(T0 - timedelta(seconds=30)), _event(T0 + timedelta(minutes=2))])
    rows = _queue(conn)
    assert [(w, lo, hi) for _, w, _, lo, hi in rows] == [
        ("W1", T0 - timedelta(seconds=30), T0 + timedelta(minutes=2)),
        ("W2", T0 + timedelta(seconds=5), T0 + timedelta(seconds=5)),
    ]
    assert rows[0][0] > first
    # A refresh round that read the first version deletes by its id: the widened row stays.
    assert conn.execute("DELETE FROM event_invalidations WHERE id = %s", (first,)).rowcount == 0
    # Another hour, or another station of the worker, is a row of its own.
    write_events(conn, [_event(T0 + timedelta(hours=1)), _event(T0, station="S2")])
    assert len(_queue(conn)) == 4
    refresh_all(conn, max_gap_s=600)
    assert _queue(conn) == []
    row = conn.execute("SELECT sum(working_s) FROM rollup_worker_hour WHERE worker_id = 'W1'").fetchone()
    assert row is not None and row[0] > 0


def test_a_row_of_an_earlier_second_is_not_widened(conn: psycopg.Connection[Any]) -> None:
    """A refresh round that outlasts the batch interval still consumes what was queued before it."""
    conn.execute(
        "INSERT INTO event_invalidations (worker_id, station_id, min_ts, max_ts, slot) "
        "VALUES ('W1', 'S1', %s, %s, date_trunc('second', now()) - interval '5 seconds')",
        (T0, T0),
    )
    ((old, *_),) = _queue(conn)
    write_events(conn, [_event(T0 + timedelta(seconds=9))])
    rows = _queue(conn)
    assert [(r[0] == old, r[3], r[4]) for r in rows] == [
        (True, T0, T0),
        (False, T0 + timedelta(seconds=9), T0 + timedelta(seconds=9)),
    ]


def test_deleting_events_through_the_queue_rebuilds_their_hours(conn: psycopg.Connection[Any]) -> None:
    write_events(conn, [_event(T0), _event(T0 + timedelta(seconds=40), kind="idle")])
    refresh_all(conn, max_gap_s=600)
    assert conn.execute("SELECT working_s FROM rollup_worker_hour").fetchone() == (40.0,)
    from takt.store.events import INVALIDATE

    with conn.transaction():
        rows = conn.execute(
            "DELETE FROM events WHERE event_type = 'idle' RETURNING worker_id, station_id, ts, ts"
        ).fetchall()
        conn.execute(
            INVALIDATE,
            {
                "workers": [r[0] for r in rows] * 2,  # twice: one statement, one row
                "stations": [r[1] for r in rows] * 2,
                "min_ts": [r[2] for r in rows] * 2,
                "max_ts": [r[3] for r in rows] * 2,
            },
        )
    assert len(_queue(conn)) == 1
    refresh_all(conn, max_gap_s=600)
    assert conn.execute("SELECT working_s FROM rollup_worker_hour").fetchone() == (0.0,)


def test_the_upgrade_merges_the_queue_per_key_hour(fresh_database: str) -> None:
    upgrade(fresh_database, "0007_event_identity")
    spans = [
        ("W1", "S1", T0, T0 + timedelta(seconds=1)),
        ("W1", "S1", T0 + timedelta(minutes=20), T0 + timedelta(hours=2)),
        ("W1", "S1", T0 + timedelta(hours=1), T0 + timedelta(hours=1)),
        ("W1", "S2", T0, T0),
    ]
    with psycopg.connect(fresh_database, autocommit=True, options="-c TimeZone=UTC") as conn:
        for span in spans:
            conn.execute(
                "INSERT INTO event_invalidations (worker_id, station_id, min_ts, max_ts) "
                "VALUES (%s, %s, %s, %s)",
                span,
            )
    upgrade(fresh_database)
    with psycopg.connect(fresh_database, autocommit=True, options="-c TimeZone=UTC") as conn:
        rows = [r[1:] for r in _queue(conn)]
    assert sorted(rows) == sorted(
        [
            ("W1", "S1", T0, T0 + timedelta(hours=2)),
            ("W1", "S1", T0 + timedelta(hours=1), T0 + timedelta(hours=1)),
            ("W1", "S2", T0, T0),
        ]
    )


def test_the_gap_is_recorded_once_and_another_is_refused(database: str) -> None:
    require_metric_settings(database, max_gap_s=600)
    require_metric_settings(database, max_gap_s=600)
    with pytest.raises(
        MetricSettingsError, match=r"TAKT_MAX_STATE_GAP_S=600.*TAKT_MAX_STATE_GAP_S=300.*rebuild"
    ):
        require_metric_settings(database, max_gap_s=300)


def _takt(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "takt.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_collector_refuses_another_gap_until_takt_db_rebuild(
    database: str, conn: psycopg.Connection[Any], collector_mqtt_url: str
) -> None:
    # Two untimed states 400 s apart: the first lasts min(400, gap).
    write_events(conn, [_event(T0), _event(T0 + timedelta(seconds=400), kind="idle")])
    refresh_all(conn, max_gap_s=600)
    require_metric_settings(database, max_gap_s=600)
    env = {"TAKT_DATABASE_URL": database, "TAKT_MQTT_URL": collector_mqtt_url, "TAKT_MAX_STATE_GAP_S": "300"}
    refused = _takt("collector", env=env)
    assert refused.returncode != 0
    assert "TAKT_MAX_STATE_GAP_S=600" in refused.stderr and "takt db rebuild" in refused.stderr
    rebuilt = _takt("db", "rebuild", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "TAKT_MAX_STATE_GAP_S=300" in rebuilt.stdout
    assert conn.execute("SELECT max_state_gap_s FROM rollup_meta").fetchone() == (300.0,)
    assert conn.execute("SELECT working_s FROM rollup_worker_hour").fetchone() == (300.0,)
    require_metric_settings(database, max_gap_s=300)
