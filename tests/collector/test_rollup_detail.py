"""Detail and model rollups: their shape, per-key refresh rounds, and the 0005 migration's backfill."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from alembic import command

from takt.store import db
from takt.store.events import write_events
from takt.store.rollups import ROLLUP_TABLES, rebuild, refresh, refresh_all
from tests.collector.rollup_events import GAP, T0, ev

US = 1_000_000


def snapshot(conn: psycopg.Connection[Any], tables: tuple[str, ...] = ROLLUP_TABLES) -> dict[str, list[Any]]:
    return {
        t: [
            tuple(round(v, 6) if isinstance(v, float) else v for v in row)
            for row in conn.execute(f"SELECT * FROM {t} r ORDER BY r::text").fetchall()
        ]
        for t in tables
    }


def test_detail_rows_hold_pieces_islands_and_events(conn: psycopg.Connection[Any]) -> None:
    write_events(
        conn,
        [
            ev(50, duration_s=1800.0),  # 08:50-09:20, split at 09:00
            ev(55, "idle", worker="W2", duration_s=600.0),  # 08:55-09:05, overlaps W1 at S1
            ev(56, "product_count", worker="W2", count=2, confidence=0.5),
            ev(57, "product_count", worker="W2", count=0),
        ],
    )
    refresh_all(conn, max_gap_s=GAP)
    rows = conn.execute(
        "SELECT bucket, worker_id, state_kind, state_from, state_to, event_at, event_conf, unit_at, "
        "unit_count FROM rollup_worker_detail ORDER BY bucket, worker_id"
    ).fetchall()
    m = 60 * US
    assert [r[1:] for r in rows] == [
        ("W1", ["w"], [50 * m], [60 * m], [50 * m], [0.9], [], []),
        ("W2", ["i"], [55 * m], [60 * m], [55 * m, 56 * m, 57 * m], [0.9, 0.5, 0.9], [56 * m], [2]),
        ("W1", ["w"], [0], [20 * m], [], [], [], []),
        ("W2", ["i"], [0], [5 * m], [], [], [], []),
    ]
    assert [r[0] for r in rows] == [T0, T0, T0 + timedelta(hours=1), T0 + timedelta(hours=1)]
    stations = conn.execute(
        "SELECT bucket, island_kind, island_from, island_to, event_at, unit_at, unit_count "
        "FROM rollup_station_detail ORDER BY bucket"
    ).fetchall()
    # Islands per kind: b (observed, any state), o (occupied: working or idle), w (working).
    assert [r[1:] for r in stations] == [
        (["b", "o", "w"], [50 * m] * 3, [60 * m] * 3, [50 * m, 55 * m, 56 * m, 57 * m], [56 * m], [2]),
        (["b", "o", "w"], [0, 0, 0], [20 * m, 20 * m, 20 * m], [], [], []),
    ]
    totals = conn.execute(
        "SELECT occupied_s, working_s, units, events FROM rollup_station_hour ORDER BY 1"
    ).fetchall()
    assert sorted(totals) == [(600.0, 600.0, 2, 4), (1200.0, 1200.0, 0, 0)]
    models = conn.execute(
        "SELECT bucket, working_s, idle_s, units, events, conf_sum FROM rollup_model_hour ORDER BY 1"
    ).fetchall()
    assert [r[1:] for r in models] == [(600.0, 300.0, 2, 4, pytest.approx(3.2)), (1200.0, 300.0, 0, 0, 0.0)]
    assert conn.execute("SELECT working_s, idle_s, units, events FROM rollup_model_day").fetchall() == [
        (1800.0, 600.0, 2, 4)
    ]


def _xmins(conn: psycopg.Connection[Any], table: str, key: str, value: str) -> dict[Any, str]:
    rows = conn.execute(f"SELECT bucket, xmin::text FROM {table} WHERE {key} = %s ORDER BY bucket", (value,))
    return {bucket: xmin for bucket, xmin in rows.fetchall()}


def test_a_late_event_rebuilds_only_its_worker_and_station_hours(conn: psycopg.Connection[Any]) -> None:
    events = [
        ev(m, kind, worker=w, station=s)
        for m in range(0, 6 * 60, 7)
        for kind, w, s in (("working", "W1", "S1"), ("idle", "W2", "S2"), ("working", "W3", "S1"))
    ]
    write_events(conn, events)
    refresh_all(conn, max_gap_s=GAP)
    before = {
        (table, value): _xmins(conn, table, key, value)
        for table, key, value in (
            ("rollup_worker_detail", "worker_id", "W1"),
            ("rollup_worker_detail", "worker_id", "W2"),
            ("rollup_worker_hour", "worker_id", "W2"),
            ("rollup_worker_day", "worker_id", "W2"),
            ("rollup_hour", "worker_id", "W3"),
            ("rollup_station_detail", "station_id", "S1"),
            ("rollup_station_detail", "station_id", "S2"),
            ("rollup_station_day", "station_id", "S2"),
        )
    }
    # Late: W1 idle at 10:15, between its events at 10:13 and 10:20: only hour 10 changes.
    write_events(conn, [ev(135, "idle")])
    result = refresh(conn, max_gap_s=GAP)
    assert result.invalidations == 1
    # One worker-hour (W1 10:00) and one station-hour (S1 10:00).
    assert result.hours_rebuilt == 2
    late_hour = T0 + timedelta(hours=2)
    for (table, value), xmins in before.items():
        after = _xmins(conn, table, "station_id" if "station" in table else "worker_id", value)
        assert after.keys() == xmins.keys(), (table, value)
        changed = {bucket for bucket in xmins if after[bucket] != xmins[bucket]}
        assert changed == ({late_hour} if value in ("W1", "S1") else set()), (table, value, changed)
    # And what the round left equals a rebuild from scratch.
    incremental = snapshot(conn)
    rebuild(conn, max_gap_s=GAP)
    assert snapshot(conn) == incremental


def test_upgrade_to_0005_backfills_detail_and_model_rollups(
    conn: psycopg.Connection[Any], database: str
) -> None:
    new_tables = ("rollup_worker_detail", "rollup_station_detail", "rollup_model_hour", "rollup_model_day")
    write_events(
        conn,
        [
            ev(m * 2.5, kind, worker=w, station=s, **extra)
            for m in range(200)
            for kind, w, s, extra in (
                ("working" if m % 3 else "idle", "W1", "S1", {}),
                ("product_count", "W1", "S1", {"count": m % 3}),
                ("absent" if m % 4 else "working", "unknown", "S2", {"model_version": "m@2"}),
                ("idle", "W2", "S1", {"shadow": True, "model_version": "cand@1", "duration_s": 90.0}),
            )
        ],
    )
    refresh_all(conn, max_gap_s=GAP)
    # Rows backfilled by 0005 get no hi_us from 0012 (NULL: read as the end of the hour).
    conn.execute("UPDATE rollup_worker_detail SET hi_us = NULL")
    built = snapshot(conn, new_tables)
    assert all(built.values())
    command.downgrade(db.alembic_config(database), "0004_models")
    assert conn.execute("SELECT to_regclass('rollup_worker_detail')").fetchone() == (None,)
    db.upgrade(database)
    assert snapshot(conn, new_tables) == built
