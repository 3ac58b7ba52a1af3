"""Derived state durations and hourly rollups, kept current from ``event_invalidations``.

Run as a background loop by the collector and by the API. Several processes may
run it at once: a transaction-scoped advisory lock lets one refresher work at a
time and the others skip the round; everything a round does is recomputed from
``events``, so a repeated or interrupted round leaves the same result.

Why not continuous aggregates: a state event without ``duration_s`` lasts until
the same worker's next state event (capped at ``max_gap_s``). That needs a window
function, which continuous aggregates cannot use, and a late event changes the
duration of the event before it. So a round (1) re-derives ``effective_duration_s``
for the touched worker ranges, including the predecessor whose "next" changed,
then (2) rebuilds every rollup row of the hours those changes reach. Intervals are
split at hour boundaries, so summing hours is exact; see docs/metrics.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from takt.periodic import PeriodicDatabaseTask

logger = logging.getLogger(__name__)

# Arbitrary constant shared by every refresher process.
ADVISORY_LOCK_KEY = 0x74616B74  # "takt"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
ROLLUP_HOUR_TABLES = ("rollup_hour", "rollup_worker_hour", "rollup_station_hour")
ROLLUP_TABLES = (*ROLLUP_HOUR_TABLES, "rollup_worker_day", "rollup_station_day")
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)

# A piece of a state interval per hour it overlaps, for events in [lo - lookback, hi).
_PIECES = """
    SELECT b.bucket, coalesce(e.site_id, '') AS site_id, e.worker_id, e.station_id, e.event_type,
           coalesce(e.model_version, '') AS model_version, e.shadow,
           greatest(e.ts, b.bucket) AS s,
           least(e.ts + e.effective_duration_s * interval '1 second', b.bucket + interval '1 hour') AS en
    FROM events e
    CROSS JOIN LATERAL generate_series(
        greatest(date_bin('1 hour', e.ts, %(origin)s), %(lo)s),
        least(e.ts + e.effective_duration_s * interval '1 second', %(hi)s) - interval '1 microsecond',
        interval '1 hour') AS b(bucket)
    WHERE e.event_type <> 'product_count' AND e.effective_duration_s > 0
      AND e.ts >= %(lo)s - %(lookback)s * interval '1 second' AND e.ts < %(hi)s
      AND e.ts + e.effective_duration_s * interval '1 second' > %(lo)s
"""

_ROLLUP_HOUR = f"""
INSERT INTO rollup_hour (bucket, site_id, worker_id, station_id, event_type, model_version, shadow,
                         seconds, units, events, conf_sum, conf_min, conf_max)
SELECT bucket, site_id, worker_id, station_id, event_type, model_version, shadow,
       coalesce(sum(seconds), 0), sum(units), sum(events), coalesce(sum(conf), 0), min(conf), max(conf)
FROM (
    SELECT bucket, site_id, worker_id, station_id, event_type, model_version, shadow,
           extract(epoch FROM en - s)::double precision AS seconds, 0 AS units, 0 AS events,
           NULL::real AS conf
    FROM ({_PIECES}) p
    UNION ALL
    SELECT date_bin('1 hour', ts, %(origin)s), coalesce(site_id, ''), worker_id, station_id, event_type,
           coalesce(model_version, ''), shadow, 0,
           CASE WHEN event_type = 'product_count' THEN count ELSE 0 END, 1, confidence
    FROM events WHERE ts >= %(lo)s AND ts < %(hi)s
) x
GROUP BY bucket, site_id, worker_id, station_id, event_type, model_version, shadow
"""

_ROLLUP_WORKER_HOUR = """
INSERT INTO rollup_worker_hour (bucket, site_id, worker_id, working_s, idle_s, absent_s, units, events)
SELECT bucket, site_id, worker_id,
       coalesce(sum(seconds) FILTER (WHERE event_type = 'working'), 0),
       coalesce(sum(seconds) FILTER (WHERE event_type = 'idle'), 0),
       coalesce(sum(seconds) FILTER (WHERE event_type = 'absent'), 0),
       sum(units), sum(events)
FROM rollup_hour WHERE NOT shadow AND bucket >= %(lo)s AND bucket < %(hi)s
GROUP BY bucket, site_id, worker_id
"""

# Gaps and islands per (hour, station, kind): an interval starts a new island
# when it begins after every earlier interval has ended.
_ROLLUP_STATION_HOUR = f"""
WITH pieces AS ({_PIECES}),
kinds AS (
    SELECT bucket, site_id, station_id, k.kind, s, en
    FROM pieces CROSS JOIN LATERAL (VALUES ('observed'), ('occupied'), ('working')) AS k(kind)
    WHERE NOT shadow AND en > s AND (k.kind = 'observed'
       OR (k.kind = 'occupied' AND event_type IN ('working', 'idle'))
       OR (k.kind = 'working' AND event_type = 'working'))
), ordered AS (
    SELECT *, max(en) OVER (PARTITION BY bucket, site_id, station_id, kind ORDER BY s, en
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
    FROM kinds
), islands AS (
    SELECT *, sum(CASE WHEN prev_end IS NULL OR s > prev_end THEN 1 ELSE 0 END)
              OVER (PARTITION BY bucket, site_id, station_id, kind ORDER BY s, en
                    ROWS UNBOUNDED PRECEDING) AS island
    FROM ordered
), merged AS (
    SELECT bucket, site_id, station_id, kind, extract(epoch FROM max(en) - min(s))::double precision AS secs
    FROM islands GROUP BY bucket, site_id, station_id, kind, island
)
INSERT INTO rollup_station_hour (bucket, site_id, station_id, occupied_s, working_s, observed_s)
SELECT bucket, site_id, station_id,
       coalesce(sum(secs) FILTER (WHERE kind = 'occupied'), 0),
       coalesce(sum(secs) FILTER (WHERE kind = 'working'), 0),
       coalesce(sum(secs) FILTER (WHERE kind = 'observed'), 0)
FROM merged GROUP BY bucket, site_id, station_id
"""

_STATION_COUNTS = """
INSERT INTO rollup_station_hour (bucket, site_id, station_id, units, events)
SELECT bucket, site_id, station_id, sum(units), sum(events)
FROM rollup_hour WHERE NOT shadow AND bucket >= %(lo)s AND bucket < %(hi)s
GROUP BY bucket, site_id, station_id
ON CONFLICT (bucket, site_id, station_id) DO UPDATE SET units = excluded.units, events = excluded.events
"""


# The durations of one worker partition (see docs/metrics.md): the worker, per
# station for the shared id 'unknown', and shadow events of each model apart,
# so shadow events never cut production segments.
def _partition(alias: str = "") -> str:
    a = f"{alias}." if alias else ""
    return (
        f"{a}worker_id = %(worker)s AND (%(worker)s <> 'unknown' OR {a}station_id = %(station)s) "
        f"AND {a}shadow = %(shadow)s AND (NOT %(shadow)s OR coalesce({a}model_version, '') = %(model)s) "
        f"AND {a}event_type <> 'product_count'"
    )


_PARTITION = _partition()

_DERIVE_RANGE = f"""
WITH part AS (
    SELECT event_id, ts, duration_s, effective_duration_s AS old_eff,
           lead(ts) OVER (ORDER BY ts, event_id) AS next_ts
    FROM events
    WHERE {_PARTITION} AND ts >= %(lo)s AND ts <= %(hi)s + %(gap)s * interval '1 second'
), derived AS (
    SELECT p.event_id, p.ts, p.old_eff,
           CASE WHEN p.duration_s IS NOT NULL THEN p.duration_s
                WHEN p.next_ts IS NOT NULL THEN least(extract(epoch FROM p.next_ts - p.ts)::double precision,
                                                      %(gap)s)
                WHEN EXISTS (SELECT 1 FROM events l WHERE {_partition("l")}
                             AND (l.ts, l.event_id) > (p.ts, p.event_id)) THEN %(gap)s
                ELSE 0 END AS eff
    FROM part p WHERE p.ts <= %(hi)s
)
UPDATE events e SET effective_duration_s = d.eff
FROM derived d
WHERE e.event_id = d.event_id AND e.ts = d.ts AND e.effective_duration_s IS DISTINCT FROM d.eff
RETURNING e.ts, greatest(d.eff, coalesce(d.old_eff, 0))
"""

_DERIVE_ALL = """
UPDATE events e SET effective_duration_s = d.eff
FROM (
    SELECT event_id, ts,
           CASE WHEN duration_s IS NOT NULL THEN duration_s
                WHEN next_ts IS NULL THEN 0
                ELSE least(extract(epoch FROM next_ts - ts)::double precision, %(gap)s) END AS eff
    FROM (
        SELECT event_id, ts, duration_s,
               lead(ts) OVER (PARTITION BY worker_id,
                                           CASE WHEN worker_id = 'unknown' THEN station_id END,
                                           shadow, CASE WHEN shadow THEN coalesce(model_version, '') END
                              ORDER BY ts, event_id) AS next_ts
        FROM events WHERE event_type <> 'product_count'
    ) x
) d
WHERE e.event_id = d.event_id AND e.ts = d.ts AND e.effective_duration_s IS DISTINCT FROM d.eff
"""


@dataclass(frozen=True, slots=True)
class RefreshResult:
    invalidations: int
    durations_changed: int
    hours_rebuilt: int
    skipped: bool = False


def floor_hour(ts: datetime) -> datetime:
    return ORIGIN + ((ts - ORIGIN) // HOUR) * HOUR


def ceil_hour(ts: datetime) -> datetime:
    floored = floor_hour(ts)
    return floored if floored == ts else floored + HOUR


def merge_ranges(ranges: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Hour-aligned, sorted, non-overlapping cover of the given time ranges."""
    merged: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted((floor_hour(a), max(ceil_hour(b), floor_hour(a) + HOUR)) for a, b in ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _lookback(conn: psycopg.Connection[Any]) -> float:
    row = conn.execute("SELECT max_duration_s FROM rollup_meta WHERE id = 1").fetchone()
    return float(row[0]) if row else 0.0


def floor_day(ts: datetime) -> datetime:
    return ORIGIN + ((ts - ORIGIN) // DAY) * DAY


def ceil_day(ts: datetime) -> datetime:
    floored = floor_day(ts)
    return floored if floored == ts else floored + DAY


def rebuild_hours(conn: psycopg.Connection[Any], lo: datetime, hi: datetime) -> int:
    """Recompute every rollup row with a bucket in [lo, hi) (hour-aligned) from events."""
    params = {"lo": lo, "hi": hi, "origin": ORIGIN, "lookback": _lookback(conn)}
    for table in ROLLUP_HOUR_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE bucket >= %(lo)s AND bucket < %(hi)s", params)
    conn.execute(_ROLLUP_HOUR, params)
    conn.execute(_ROLLUP_WORKER_HOUR, params)
    conn.execute(_ROLLUP_STATION_HOUR, params)
    conn.execute(_STATION_COUNTS, params)
    # Days containing a rebuilt hour are re-summed from their (complete) hours.
    days = {"lo": floor_day(lo), "hi": ceil_day(hi), "origin": ORIGIN}
    for day_table, hour_table, columns in (
        ("rollup_worker_day", "rollup_worker_hour", "worker_id, working_s, idle_s, absent_s, units, events"),
        (
            "rollup_station_day",
            "rollup_station_hour",
            "station_id, occupied_s, working_s, observed_s, units, events",
        ),
    ):
        key, *values = [c.strip() for c in columns.split(",")]
        conn.execute(f"DELETE FROM {day_table} WHERE bucket >= %(lo)s AND bucket < %(hi)s", days)
        conn.execute(
            f"INSERT INTO {day_table} (bucket, site_id, {columns}) "
            f"SELECT date_bin('1 day', bucket, %(origin)s), site_id, {key}, "
            f"{', '.join(f'sum({v})' for v in values)} FROM {hour_table} "
            f"WHERE bucket >= %(lo)s AND bucket < %(hi)s GROUP BY 1, 2, 3",
            days,
        )
    return (hi - lo) // HOUR


def _derive_worker_range(
    conn: psycopg.Connection[Any], worker: str, station: str, min_ts: datetime, max_ts: datetime, gap: float
) -> tuple[int, list[tuple[datetime, datetime]]]:
    """Re-derive durations around [min_ts, max_ts]; returns changes and the time they touch."""
    base = {"worker": worker, "station": station, "gap": gap}
    partitions = conn.execute(
        "SELECT DISTINCT shadow, CASE WHEN shadow THEN coalesce(model_version, '') ELSE '' END FROM events "
        "WHERE worker_id = %(worker)s AND (%(worker)s <> 'unknown' OR station_id = %(station)s) "
        "AND ts >= %(lo)s AND ts <= %(hi)s",
        {**base, "lo": min_ts - timedelta(seconds=gap), "hi": max_ts},
    ).fetchall()
    # A deleted event leaves no row behind; its production predecessor still changes.
    keys = {(False, ""), *((bool(s), str(m)) for s, m in partitions)}
    changed = 0
    touched: list[tuple[datetime, datetime]] = []
    for shadow, model in sorted(keys):
        params = {**base, "shadow": shadow, "model": model}
        prev = conn.execute(
            f"SELECT max(ts) FROM events WHERE {_PARTITION} AND ts < %(lo)s", {**params, "lo": min_ts}
        ).fetchone()
        lo = min_ts - timedelta(seconds=gap)
        if prev and prev[0] is not None:
            lo = min(lo, prev[0])
        rows = conn.execute(_DERIVE_RANGE, {**params, "lo": lo, "hi": max_ts}).fetchall()
        changed += len(rows)
        touched.extend((ts, ts + timedelta(seconds=float(eff))) for ts, eff in rows)
    # The new rows themselves (their counts, and explicit durations, which the
    # UPDATE above leaves alone because they are already right).
    end = conn.execute(
        "SELECT max(ts + coalesce(effective_duration_s, 0) * interval '1 second'), max(effective_duration_s) "
        "FROM events WHERE worker_id = %(worker)s AND (%(worker)s <> 'unknown' OR station_id = %(station)s) "
        "AND ts >= %(lo)s AND ts <= %(hi)s",
        {**base, "lo": min_ts, "hi": max_ts},
    ).fetchone()
    touched.append((min_ts, max(max_ts, end[0]) if end and end[0] else max_ts))
    max_eff = max(
        [float(end[1]) if end and end[1] is not None else 0.0]
        + [b.timestamp() - a.timestamp() for a, b in touched[:-1]]
    )
    conn.execute(
        "UPDATE rollup_meta SET max_duration_s = greatest(max_duration_s, %s) WHERE id = 1", (max_eff,)
    )
    return changed, touched


def refresh(conn: psycopg.Connection[Any], *, max_gap_s: float, batch: int = 1000) -> RefreshResult:
    """One round: consume up to ``batch`` invalidations. Commits; safe to run concurrently."""
    with conn.transaction():
        locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,)).fetchone()
        if not locked or not locked[0]:
            return RefreshResult(0, 0, 0, skipped=True)
        rows = conn.execute(
            "SELECT id, worker_id, station_id, min_ts, max_ts FROM event_invalidations ORDER BY id LIMIT %s",
            (batch,),
        ).fetchall()
        if not rows:
            return RefreshResult(0, 0, 0)
        # Coalesce the queue per (worker, station) so a burst of small batches
        # costs one derivation each.
        spans: dict[tuple[str, str], tuple[datetime, datetime]] = {}
        for _, worker, station, lo, hi in rows:
            key = (worker, station if worker == "unknown" else "")
            old = spans.get(key)
            spans[key] = (min(old[0], lo), max(old[1], hi)) if old else (lo, hi)
        changed = 0
        touched: list[tuple[datetime, datetime]] = []
        for (worker, station), (lo, hi) in spans.items():
            n, t = _derive_worker_range(conn, worker, station, lo, hi, max_gap_s)
            changed += n
            touched.extend(t)
        hours = sum(rebuild_hours(conn, lo, hi) for lo, hi in merge_ranges(touched))
        conn.execute("DELETE FROM event_invalidations WHERE id = ANY(%s)", ([r[0] for r in rows],))
        conn.execute("UPDATE rollup_meta SET refreshed_at = now() WHERE id = 1")
    logger.debug("rollups: %d invalidations, %d durations, %d hours", len(rows), changed, hours)
    return RefreshResult(len(rows), changed, hours)


def refresh_all(conn: psycopg.Connection[Any], *, max_gap_s: float, batch: int = 1000) -> int:
    """Run rounds until the queue is empty (tests, scripts); returns invalidations consumed."""
    total = 0
    while True:
        result = refresh(conn, max_gap_s=max_gap_s, batch=batch)
        total += result.invalidations
        if result.skipped or result.invalidations == 0:
            return total


def rebuild(
    conn: psycopg.Connection[Any],
    *,
    max_gap_s: float,
    chunk: timedelta = timedelta(days=7),
    derive: bool = True,
) -> dict[str, float]:
    """Derive every duration and rebuild every rollup (bulk loads, a changed max gap).

    ``derive=False`` keeps the stored durations (a rollup rebuild after a schema
    change). Returns seconds spent per step.
    """
    timings: dict[str, float] = {}
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        started = time.perf_counter()
        if derive:
            conn.execute(_DERIVE_ALL, {"gap": max_gap_s})
        timings["derive"] = time.perf_counter() - started
        row = conn.execute(
            "SELECT min(ts), max(ts + coalesce(effective_duration_s, 0) * interval '1 second'), "
            "coalesce(max(effective_duration_s), 0) FROM events"
        ).fetchone()
        conn.execute(
            "UPDATE rollup_meta SET max_duration_s = %s, refreshed_at = now()", (row[2] if row else 0,)
        )
        conn.execute("DELETE FROM event_invalidations")
        for table in ROLLUP_TABLES:
            conn.execute(f"TRUNCATE {table}")
        if row and row[0] is not None:
            lo, end = floor_day(row[0]), ceil_hour(row[1]) + HOUR
            while lo < end:
                hi = min(lo + chunk, end)
                rebuild_hours(conn, lo, hi)
                lo = hi
        timings["rollups"] = time.perf_counter() - started - timings["derive"]
    return timings


def apply_timescale_policies(
    conn: psycopg.Connection[Any], *, compress_after: timedelta | None, retention: timedelta | None
) -> bool:
    """Compression of the events and rollup hypertables, retention of the rollups.

    A no-op on plain PostgreSQL. Compress only chunks older than the longest
    replay accepted (7 days at least): re-sent events upsert into their chunk
    and rebuilding an hour deletes and inserts rows, both slow in compressed
    chunks (timescale/timescaledb #5801, #7672). Raw events are never dropped
    by a retention policy here: they are the source of every figure.
    """
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is None:
        return False
    if compress_after is not None:
        conn.execute(
            "ALTER TABLE events SET (timescaledb.compress, timescaledb.compress_segmentby = 'station_id', "
            "timescaledb.compress_orderby = 'ts')"
        )
        conn.execute(
            "SELECT add_compression_policy('events', %s::interval, if_not_exists => true)", (compress_after,)
        )
    for table, segment in (
        ("rollup_hour", "worker_id"),
        ("rollup_worker_hour", "worker_id"),
        ("rollup_station_hour", "station_id"),
        ("rollup_worker_day", "worker_id"),
        ("rollup_station_day", "station_id"),
    ):
        if compress_after is not None:
            conn.execute(
                f"ALTER TABLE {table} SET (timescaledb.compress, "
                f"timescaledb.compress_segmentby = '{segment}')"
            )
            conn.execute(
                "SELECT add_compression_policy(%s, %s::interval, if_not_exists => true)",
                (table, compress_after),
            )
        if retention is not None:
            conn.execute(
                "SELECT add_retention_policy(%s, %s::interval, if_not_exists => true)", (table, retention)
            )
    return True


class RollupRefresher(PeriodicDatabaseTask):
    """Background thread: a refresh round every ``interval_s`` seconds until stopped."""

    def __init__(self, database_url: str, *, max_gap_s: float, interval_s: float = 2.0) -> None:
        super().__init__("rollup-refresher", database_url, interval_s)
        self._max_gap_s = max_gap_s

    def run_round(self, conn: psycopg.Connection[Any]) -> None:
        refresh_all(conn, max_gap_s=self._max_gap_s)
