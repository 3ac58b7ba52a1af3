"""Busy recent hours in parts (migration 0012): a round rewrites only the parts from its first change on,
and what it leaves is what a rebuild from scratch leaves, once parts of one key-hour are put together."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from alembic import command

from takt.store import db, rollups
from takt.store.events import INVALIDATE, write_events
from takt.store.rollups import ROLLUP_TABLES, rebuild, refresh, refresh_all
from tests.collector.rollup_events import GAP, T0, ev

US = 1_000_000
PART = 120 * US  # two-minute parts: the events below are minutes apart
ARRAYS = {
    "state_kind",
    "state_from",
    "state_to",
    "event_at",
    "event_conf",
    "unit_at",
    "unit_count",
    "island_kind",
    "island_from",
    "island_to",
}


@pytest.fixture(autouse=True)
def parts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Every recent key-hour in parts, busy or not.
    monkeypatch.setattr(rollups, "PART_MIN_EVENTS", 0)
    monkeypatch.setattr(rollups, "PART_US", PART)
    yield


def _columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(f"SELECT * FROM {table} LIMIT 0")
    assert rows.description is not None
    return [c.name for c in rows.description]


def _merge_islands(kinds: list[str], froms: list[int], tos: list[int]) -> list[tuple[str, int, int]]:
    """Islands of a union never touch (a piece starting where one ends continues it): islands of one
    kind that touch were split at a part boundary."""
    out: list[tuple[str, int, int]] = []
    for k, f, t in sorted(zip(kinds, froms, tos, strict=True)):
        if out and out[-1][0] == k and out[-1][2] == f:
            out[-1] = (k, out[-1][1], t)
        else:
            out.append((k, f, t))
    return out


def canonical(conn: psycopg.Connection[Any]) -> dict[str, list[Any]]:
    """Every rollup table with the parts of each key-hour put together: sums added, minimums and
    maximums taken, offset arrays concatenated in part order, union islands re-joined."""
    out: dict[str, list[Any]] = {}
    for table in ROLLUP_TABLES:
        columns = _columns(conn, table)
        rows = conn.execute(f"SELECT * FROM {table}").fetchall()
        if "part" not in columns:
            out[table] = sorted(tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in rows)
            continue
        arrays = set(columns) & ARRAYS
        sums = {"seconds", "units", "events", "conf_sum", *(c for c in columns if c.endswith("_s"))}
        keys = [c for c in columns if c not in arrays | sums | {"part", "hi_us", "conf_min", "conf_max"}]
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            row = dict(zip(columns, r, strict=True))
            groups[tuple(row[k] for k in keys)].append(row)
        merged = []
        for key, parts in groups.items():
            parts.sort(key=lambda p: p["part"])
            row: dict[str, Any] = dict(zip(keys, key, strict=True))
            for c in sums & set(columns):
                row[c] = round(sum(p[c] for p in parts), 6)
            for c, pick in (("conf_min", min), ("conf_max", max), ("hi_us", max)):
                if c in columns:
                    values = [p[c] for p in parts if p[c] is not None]
                    row[c] = pick(values) if values else None
            for c in arrays:
                row[c] = [v for p in parts for v in p[c]]
            if table == "rollup_station_detail":
                islands = _merge_islands(row["island_kind"], row["island_from"], row["island_to"])
                row["island_kind"] = [i[0] for i in islands]
                row["island_from"] = [i[1] for i in islands]
                row["island_to"] = [i[2] for i in islands]
            merged.append(tuple(sorted((c, repr(v)) for c, v in row.items())))
        out[table] = sorted(merged)
    return out


def _assert_equals_rebuild(conn: psycopg.Connection[Any]) -> None:
    incremental = canonical(conn)
    rebuild(conn, max_gap_s=GAP)
    assert conn.execute("SELECT count(*) FROM rollup_worker_detail WHERE part > 0").fetchone() == (0,)
    rebuilt = canonical(conn)
    for table in ROLLUP_TABLES:
        assert rebuilt[table], table
        assert incremental[table] == rebuilt[table], table


def _parts(conn: psycopg.Connection[Any], table: str = "rollup_worker_detail") -> int:
    row = conn.execute(f"SELECT count(*) FROM {table} WHERE part > 0").fetchone()
    return int(row[0]) if row else 0


def _stream(minutes: list[float]) -> list[Any]:
    kinds = ("working", "idle", "product_count", "working", "absent")
    return [
        ev(m, kinds[i % 5], worker=w, station=s, count=i % 3 if kinds[i % 5] == "product_count" else 0)
        for i, m in enumerate(minutes)
        for w, s in (("W1", "S1"), ("W2", "S1"), ("unknown", "S2"))
    ]


def test_in_order_appends_rewrite_only_the_latest_parts(conn: psycopg.Connection[Any]) -> None:
    events = _stream([i * 0.7 for i in range(80)])  # 08:00 .. 08:55
    for i in range(0, len(events), 9):
        write_events(conn, events[i : i + 9])
        refresh_all(conn, max_gap_s=GAP)
    assert _parts(conn) > 20 and _parts(conn, "rollup_station_detail") > 10
    # The next append rewrites the parts from its predecessor's on, nothing before them.
    before = dict(
        conn.execute("SELECT part, xmin::text FROM rollup_worker_detail WHERE worker_id = 'W1'").fetchall()
    )
    write_events(conn, [ev(56.5, "idle")])
    assert refresh(conn, max_gap_s=GAP).invalidations == 1
    after = dict(
        conn.execute("SELECT part, xmin::text FROM rollup_worker_detail WHERE worker_id = 'W1'").fetchall()
    )
    rewritten = sorted(p for p in after if before.get(p) != after[p])
    # Its predecessor (at 55.3 min) lies in the part starting at 54 min: that part and the new one.
    assert rewritten == [54 * 60 * US, 56 * 60 * US]
    assert all(before[p] == after[p] for p in after if p < 54 * 60 * US)
    _assert_equals_rebuild(conn)


def test_an_append_after_a_late_event(conn: psycopg.Connection[Any]) -> None:
    events = _stream([i * 1.3 for i in range(40)])  # 08:00 .. 08:51
    for i in range(0, len(events), 12):
        write_events(conn, events[i : i + 12])
        refresh_all(conn, max_gap_s=GAP)
    write_events(conn, [ev(10.1, "absent"), ev(30.05, "working", worker="W2")])  # late
    refresh_all(conn, max_gap_s=GAP)
    write_events(conn, _stream([52.0, 53.5]))
    refresh_all(conn, max_gap_s=GAP)
    assert _parts(conn) > 0
    _assert_equals_rebuild(conn)


def test_a_round_that_crosses_an_hour_boundary(conn: psycopg.Connection[Any]) -> None:
    events = _stream([i * 0.9 for i in range(60)])  # 08:00 .. 08:53
    write_events(conn, events)
    refresh_all(conn, max_gap_s=GAP)
    # A segment from 08:58 to 09:03, then untimed states in the next hour, in one round.
    write_events(conn, [ev(58, duration_s=300.0), ev(63.5, "idle"), ev(64, "product_count", count=2)])
    write_events(conn, _stream([61.0, 62.0, 65.0]))
    refresh_all(conn, max_gap_s=GAP)
    hours = conn.execute("SELECT DISTINCT bucket FROM rollup_worker_detail WHERE part > 0").fetchall()
    assert {h for (h,) in hours} == {T0, T0 + timedelta(hours=1)}
    _assert_equals_rebuild(conn)


def test_a_deletion_in_a_part(conn: psycopg.Connection[Any]) -> None:
    events = _stream([i * 0.8 for i in range(50)])
    write_events(conn, events)
    refresh_all(conn, max_gap_s=GAP)
    gone = [e for e in events if e.worker_id == "W1" and e.event_type.value == "working"][-3]
    with conn.transaction():
        rows = conn.execute(
            "DELETE FROM events WHERE event_id = %s RETURNING worker_id, station_id, ts, "
            "ts + coalesce(effective_duration_s, 0) * interval '1 second'",
            (gone.event_id,),
        ).fetchall()
        conn.execute(
            INVALIDATE,
            {
                "workers": [r[0] for r in rows],
                "stations": [r[1] for r in rows],
                "min_ts": [r[2] for r in rows],
                "max_ts": [r[3] for r in rows],
            },
        )
    refresh_all(conn, max_gap_s=GAP)
    _assert_equals_rebuild(conn)


def test_hours_in_parts_are_compacted_once_they_are_old(conn: psycopg.Connection[Any]) -> None:
    write_events(conn, _stream([i * 0.9 for i in range(60)]))
    refresh_all(conn, max_gap_s=GAP)
    assert _parts(conn) > 0
    # Data two hours later: 08:00 is no longer recent, its parts become one row per key-hour.
    write_events(conn, _stream([190.0, 191.0]))
    for _ in range(5):
        write_events(conn, [ev(192 + _, "idle")])
        refresh_all(conn, max_gap_s=GAP)
    old = conn.execute(
        "SELECT count(*) FROM rollup_worker_detail WHERE part > 0 AND bucket < %s", (T0 + timedelta(hours=2),)
    ).fetchone()
    assert old == (0,)
    assert _parts(conn, "rollup_station_detail") == 0 or conn.execute(
        "SELECT min(bucket) FROM rollup_station_detail WHERE part > 0"
    ).fetchone() >= (T0 + timedelta(hours=2),)
    _assert_equals_rebuild(conn)


def test_a_quiet_hour_stays_one_row(conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollups, "PART_MIN_EVENTS", 1_000)
    events = _stream([i * 0.9 for i in range(60)])
    for i in range(0, len(events), 10):
        write_events(conn, events[i : i + 10])
        refresh_all(conn, max_gap_s=GAP)
    assert _parts(conn) == 0 and _parts(conn, "rollup_station_detail") == 0
    _assert_equals_rebuild(conn)


def test_downgrade_queues_the_hours_in_parts(conn: psycopg.Connection[Any], database: str) -> None:
    write_events(conn, _stream([i * 0.9 for i in range(30)]))
    refresh_all(conn, max_gap_s=GAP)
    held = conn.execute(
        "SELECT DISTINCT worker_id, bucket FROM rollup_worker_detail WHERE part > 0"
    ).fetchall()
    assert held
    command.downgrade(db.alembic_config(database), "0011_privacy")
    assert conn.execute("SELECT to_regclass('rollup_hour_part')").fetchone() == (None,)
    queued = conn.execute("SELECT DISTINCT worker_id, bucket FROM event_invalidations").fetchall()
    assert set(held) <= set(queued)
    db.upgrade(database)
    refresh_all(conn, max_gap_s=GAP)
    _assert_equals_rebuild(conn)
