"""Derived durations and rollups on real PostgreSQL: late data, caps, shadow, unknown, concurrency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from takt.store.events import write_events
from takt.store.rollups import ROLLUP_TABLES, merge_ranges, rebuild, refresh, refresh_all
from tests.collector.rollup_events import GAP, T0, ev


def durations(conn: psycopg.Connection[Any]) -> list[tuple[float, str, float | None]]:
    rows = conn.execute(
        "SELECT extract(epoch FROM ts - %s)::float / 60, event_type, effective_duration_s FROM events "
        "WHERE event_type <> 'product_count' ORDER BY ts, event_id",
        (T0,),
    ).fetchall()
    return [(round(m, 3), k, d) for m, k, d in rows]


def worker_seconds(conn: psycopg.Connection[Any]) -> dict[str, float]:
    rows = conn.execute(
        "SELECT worker_id, sum(working_s + idle_s + absent_s) FROM rollup_worker_hour GROUP BY 1"
    ).fetchall()
    return {w: float(s) for w, s in rows}


def test_late_event_shortens_previous_and_last_counts_zero(conn: psycopg.Connection[Any]) -> None:
    write_events(conn, [ev(0), ev(20, "idle")])
    refresh_all(conn, max_gap_s=GAP)
    # 20 minutes apart: capped at the 10-minute gap; the last event counts 0.
    assert durations(conn) == [(0.0, "working", 600.0), (20.0, "idle", 0.0)]
    write_events(conn, [ev(5, "idle")])  # late: arrives after the refresh
    refresh_all(conn, max_gap_s=GAP)
    assert durations(conn) == [(0.0, "working", 300.0), (5.0, "idle", 600.0), (20.0, "idle", 0.0)]
    assert worker_seconds(conn) == {"W1": 900.0}
    write_events(conn, [ev(26, "working")])
    refresh_all(conn, max_gap_s=GAP)
    assert durations(conn)[-2:] == [(20.0, "idle", 360.0), (26.0, "working", 0.0)]


def test_explicit_duration_spans_hours_and_is_split(conn: psycopg.Connection[Any]) -> None:
    write_events(conn, [ev(50, duration_s=1800.0)])
    refresh_all(conn, max_gap_s=GAP)
    rows = conn.execute("SELECT bucket, working_s FROM rollup_worker_hour ORDER BY bucket").fetchall()
    assert [(b.hour, s) for b, s in rows] == [(8, 600.0), (9, 1200.0)]


def test_shadow_does_not_cut_production_and_unknown_is_per_station(conn: psycopg.Connection[Any]) -> None:
    write_events(
        conn,
        [
            ev(0),
            ev(2, "idle", shadow=True, model_version="cand"),
            ev(4, "idle"),
            ev(0, worker="unknown", station="S1"),
            ev(1, worker="unknown", station="S2"),
            ev(3, "idle", worker="unknown", station="S1"),
        ],
    )
    refresh_all(conn, max_gap_s=GAP)
    rows = conn.execute(
        "SELECT worker_id, station_id, shadow, extract(epoch FROM ts - %s)::int, effective_duration_s "
        "FROM events ORDER BY 1, 2, 3, 4",
        (T0,),
    ).fetchall()
    assert ("W1", "S1", False, 0, 240.0) in rows  # not cut by the shadow event at 2 min
    assert ("unknown", "S1", False, 0, 180.0) in rows  # not cut by 'unknown' at S2
    assert ("unknown", "S2", False, 60, 0.0) in rows


def test_incremental_equals_rebuild(conn: psycopg.Connection[Any]) -> None:
    events = [
        ev(m * 1.7 % 170, k, worker=w, station=s)
        for m, (k, w, s) in enumerate(
            [
                ("working", "W1", "S1"),
                ("idle", "W2", "S1"),
                ("absent", "W1", "S2"),
                ("working", "W2", "S2"),
                ("idle", "unknown", "S1"),
            ]
            * 12
        )
    ]
    # Units with and without SKU and rejects, some moved to another hour or station later on.
    events += [
        ev(m * 13 % 170, "product_count", worker=w, station=s, count=3, **extra)
        for m, (w, s, extra) in enumerate(
            [("W1", "S1", {"sku": "A", "rejected": 1}), ("W2", "S2", {}), ("W1", "S2", {"sku": "B"})] * 4
        )
    ]
    for i in range(0, len(events), 7):
        write_events(conn, events[i : i + 7][::-1])
        refresh_all(conn, max_gap_s=GAP)

    def snapshot() -> dict[str, list[Any]]:
        return {t: conn.execute(f"SELECT * FROM {t} r ORDER BY r::text").fetchall() for t in ROLLUP_TABLES}

    incremental = snapshot()
    rebuild(conn, max_gap_s=GAP)
    rebuilt = snapshot()
    for table in ROLLUP_TABLES:
        assert incremental[table], table
        assert _rounded(rebuilt[table]) == _rounded(incremental[table]), table


def _rounded(rows: list[Any]) -> list[Any]:
    """Sums of floats added in another order may differ in the last bits."""
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows]


def test_concurrent_refreshers_skip_instead_of_blocking(
    conn: psycopg.Connection[Any], fresh_database: str
) -> None:
    write_events(conn, [ev(0), ev(1, "idle")])
    with psycopg.connect(fresh_database) as other:
        other.execute(
            "SELECT pg_advisory_xact_lock(%s)", (0x74616B74,)
        )  # held until other's transaction ends
        assert refresh(conn, max_gap_s=GAP).skipped
        other.rollback()
    assert refresh(conn, max_gap_s=GAP).invalidations == 1
    assert conn.execute("SELECT count(*) FROM event_invalidations").fetchone() == (0,)


def test_merge_ranges_aligns_to_hours() -> None:
    a = datetime(2026, 1, 1, 8, 10, tzinfo=UTC)
    assert merge_ranges(
        [(a, a + timedelta(minutes=5)), (a + timedelta(hours=1), a + timedelta(hours=1))]
    ) == [(a.replace(minute=0), a.replace(minute=0) + timedelta(hours=2))]


def test_merge_ranges_includes_the_hour_an_end_falls_on() -> None:
    # An invalidation's max_ts is an event's timestamp: a unit counted at
    # 09:00:00 belongs to the 09:00 hour, which must be rebuilt too.
    a = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    assert merge_ranges([(a, a + timedelta(hours=1))]) == [(a, a + timedelta(hours=2))]


def test_a_unit_on_the_hour_after_a_state_is_rolled_up(conn: psycopg.Connection[Any]) -> None:
    write_events(conn, [ev(0), ev(60, "product_count", count=3)])  # one batch: 08:00 .. 09:00:00
    refresh_all(conn, max_gap_s=GAP)
    rows = conn.execute("SELECT bucket, units, events FROM rollup_worker_hour ORDER BY bucket").fetchall()
    assert [(b.hour, u, e) for b, u, e in rows] == [(8, 0, 1), (9, 3, 1)]


def test_merge_ranges_half_open_ranges_and_days() -> None:
    d = datetime(2026, 1, 1, tzinfo=UTC)
    h = timedelta(hours=1)
    # Hours already aligned and half-open (what a round rebuilt) stay as they are ...
    assert merge_ranges([(d + 8 * h, d + 9 * h)], inclusive=False) == [(d + 8 * h, d + 9 * h)]
    # ... and their days are the days they touch, not the next one.
    assert merge_ranges([(d + 23 * h, d + 24 * h)], timedelta(days=1), inclusive=False) == [
        (d, d + timedelta(days=1))
    ]
    assert merge_ranges([(d + 5 * h, d + 5 * h)]) == [(d + 5 * h, d + 6 * h)]
