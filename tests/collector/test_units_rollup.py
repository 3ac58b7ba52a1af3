"""rollup_units_hour (migration 0013): units, rejects and SKUs per station-hour, kept by refresh rounds."""

from __future__ import annotations

from typing import Any

import psycopg
from alembic import command

from takt.store import db
from takt.store.events import write_events
from takt.store.privacy import erase_worker
from takt.store.rollups import rebuild, refresh_all
from tests.collector.rollup_events import GAP, T0, ev

Rows = list[tuple[Any, ...]]


def units(conn: psycopg.Connection[Any], table: str = "rollup_units_hour") -> Rows:
    return conn.execute(
        "SELECT extract(epoch FROM bucket - %s)::int / 3600, site_id, station_id, sku, units, rejected, "
        f"reported, events FROM {table} ORDER BY 1, 2, 3, 4",
        (T0,),
    ).fetchall()


def test_rounds_roll_up_units_rejects_and_skus_and_follow_deletions(conn: psycopg.Connection[Any]) -> None:
    write_events(
        conn,
        [
            ev(5, "product_count", count=4, rejected=1, sku="A", site_id="s1"),
            ev(6, "product_count", count=2, sku="A", site_id="s1"),
            ev(7, "product_count", count=3, site_id="s1"),
            ev(65, "product_count", worker="W2", count=5, rejected=5, sku="B", site_id="s1"),
            # Shadow units and states are not units of the station.
            ev(8, "product_count", count=9, sku="A", shadow=True, model_version="c", site_id="s1"),
            ev(9, "working", site_id="s1"),
        ],
    )
    refresh_all(conn, max_gap_s=GAP)
    assert units(conn) == [
        (0, "s1", "S1", "", 3, 0, 0, 1),
        (0, "s1", "S1", "A", 6, 1, 4, 2),
        (1, "s1", "S1", "B", 5, 5, 5, 1),
    ]
    # A late unit in the first hour updates its row; erasing W2 removes the second hour's row.
    write_events(conn, [ev(30, "product_count", count=1, rejected=0, sku="A", site_id="s1")])
    refresh_all(conn, max_gap_s=GAP)
    erase_worker(conn, "W2", actor="test")
    refresh_all(conn, max_gap_s=GAP)
    incremental = units(conn)
    assert incremental == [(0, "s1", "S1", "", 3, 0, 0, 1), (0, "s1", "S1", "A", 7, 1, 5, 3)]
    # The day rows (T0 is 08:00 UTC: the day began 8 hours before) sum the hours.
    assert units(conn, "rollup_units_day") == [(-8, *row[1:]) for row in incremental]
    days = units(conn, "rollup_units_day")
    rebuild(conn, max_gap_s=GAP)
    assert units(conn) == incremental and units(conn, "rollup_units_day") == days


def test_upgrade_to_0013_backfills_units(conn: psycopg.Connection[Any], database: str) -> None:
    write_events(
        conn,
        [
            ev(m * 7, "product_count", worker=f"W{m % 3}", station=f"S{m % 2}", count=m % 4, **extra)
            for m in range(40)
            for extra in ({"sku": f"K{m % 3}", "rejected": m % 4 // 2} if m % 5 else {},)
        ],
    )
    refresh_all(conn, max_gap_s=GAP)
    built = units(conn), units(conn, "rollup_units_day")
    assert len(built[0]) > 6 and built[1]
    command.downgrade(db.alembic_config(database), "0011_privacy")
    assert conn.execute("SELECT to_regclass('rollup_units_hour')").fetchone() == (None,)
    db.upgrade(database)
    assert (units(conn), units(conn, "rollup_units_day")) == built
