"""Derived state durations and rollups, kept current from ``event_invalidations``.

Run as a background loop by the collector and by the API. Several processes may
run it at once: a transaction-scoped advisory lock lets one refresher work at a
time and the others skip the round; everything a round does is recomputed from
``events``, so a repeated or interrupted round leaves the same result.

Durations follow the one state rule, ``takt.states`` (its SQL fragments are used
here). Why not continuous aggregates: a state event without ``duration_s`` lasts until
the same worker's next state event (capped at ``max_gap_s``). That needs a window
function, which continuous aggregates cannot use, and a late event changes the
duration of the event before it. So a round (1) re-derives ``effective_duration_s``
for the touched worker ranges, including the predecessor whose "next" changed,
then (2) rebuilds the rollup rows of the worker-hours and station-hours those
changes reach (and the day and model rows summed from them), nothing else: a
round's work follows what changed, not how many workers the hour has.
Intervals are split at hour boundaries, so summing hours is exact; the detail
rows keep each hour's intervals and events (offsets in microseconds) so a
window edge inside an hour is summed exactly without reading ``events``. See
docs/metrics.md.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from prometheus_client import Counter

from takt import states
from takt.contract import MAX_TIME, MIN_TIME
from takt.periodic import PeriodicDatabaseTask, is_poison
from takt.store import codes

logger = logging.getLogger(__name__)

# Arbitrary constant shared by every refresher process.
ADVISORY_LOCK_KEY = 0x74616B74  # "takt"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MICROSECOND = timedelta(microseconds=1)
# Per worker and hour (rollup_hour has every dimension; model rows are summed from it).
WORKER_HOUR_TABLES = ("rollup_hour", "rollup_worker_hour", "rollup_worker_detail")
STATION_HOUR_TABLES = ("rollup_station_hour", "rollup_station_detail")
ROLLUP_HOUR_TABLES = (*WORKER_HOUR_TABLES, *STATION_HOUR_TABLES, "rollup_model_hour")
# Units and rejects per station-hour / -day and SKU (migration 0013): rebuilt by one statement, _units_hours.
UNITS_TABLE = "rollup_units_hour"
UNITS_DAY_TABLE = "rollup_units_day"
ROLLUP_TABLES = (
    *ROLLUP_HOUR_TABLES,
    "rollup_worker_day",
    "rollup_station_day",
    "rollup_model_day",
    UNITS_TABLE,
    UNITS_DAY_TABLE,
)
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
# Invalidations one refresh transaction consumes: coalesced per worker, so a
# larger batch re-derives the same ranges fewer times.
ROUND_INVALIDATIONS = 10_000
HOUR_US = 3_600_000_000
# Busy recent hours are stored in parts (migration 0012, docs/metrics.md): a row
# of a per-hour table holds the elements of its key-hour that start in
# [part, the next part), and a round rewrites only the parts from its first
# changed element on instead of the whole hour. A worker- or station-hour is
# written in parts of PART_US once it holds PART_MIN_EVENTS events and lies
# within PART_RECENT before the newest event's hour; older hours in parts are
# compacted back into one row, at most COMPACT_PER_ROUND key-hours of each
# kind per round.
PART_US = 2_000_000
PART_MIN_EVENTS = 1_000
PART_RECENT = timedelta(hours=1)
COMPACT_PER_ROUND = 4

Range = tuple[datetime, datetime]


def _us(interval: str) -> str:
    """Whole microseconds of an interval under a day, exactly: date_part is a double (15 significant
    digits, plenty for 8.64e10 us) and avoids numeric arithmetic; timestamps have microsecond
    resolution, so rounding only removes the binary representation error."""
    return f"round(date_part('epoch', {interval}) * 1000000)::bigint"


# What a rebuild reads: events ``e`` with the range [k.lo, k.hi) (hour-aligned)
# being rebuilt, looking back for states that started earlier and reach into it.
# Either every event of one time range, or per key (a worker or a station) its
# own ranges: one index range scan each (the LATERAL ... OFFSET 0 keeps the
# planner from hash-joining a sequential scan of events instead).
# A range [lo, hi) starts anywhere (the first part rewritten) and ends on an
# hour; a rebuild also has per range its part size ``bin`` (PART_US, or
# HOUR_US: one row per key-hour) and where its scan of events starts
# (``scan``: before lo by the lookback when states from before lo can reach a
# later hour of the range, see _plan).
_KEYS = "unnest(%(keys)s::text[], %(los)s::timestamptz[], %(his)s::timestamptz[]) AS k(key, lo, hi)"
_RANGES = "unnest(%(los)s::timestamptz[], %(his)s::timestamptz[]) AS k(lo, hi)"
_KEYS_SRC = (
    "unnest(%(keys)s::text[], %(los)s::timestamptz[], %(his)s::timestamptz[], %(bins)s::bigint[], "
    "%(scans)s::timestamptz[]) AS k(key, lo, hi, bin, scan)"
)
_RANGES_SRC = (
    "unnest(%(los)s::timestamptz[], %(his)s::timestamptz[], %(bins)s::bigint[], %(scans)s::timestamptz[]) "
    "AS k(lo, hi, bin, scan)"
)


def _source(key: str | None) -> str:
    if key is None:
        return f"{_RANGES_SRC} JOIN events e ON e.ts >= k.scan AND e.ts < k.hi"
    return (
        f"{_KEYS_SRC} CROSS JOIN LATERAL (SELECT * FROM events e WHERE e.{key} = k.key "
        f"AND e.ts >= k.scan AND e.ts < k.hi OFFSET 0) e"
    )


def _rows(
    key: str | None, table: str, *, src: bool = False, reaching: bool = False, whole: bool = False
) -> str:
    """FROM items: the rows ``r`` of a per-hour rollup table in the same ranges (and keys), one index
    scan each: in the first hour of a range the parts from ``lo`` on (``reaching``: worker detail
    rows of any part that hold something ending after ``lo``; ``whole``: a table without parts)."""
    cond = "r.bucket >= date_bin('1 hour', k.lo, %(origin)s) AND r.bucket < k.hi"
    if whole:
        pass
    elif reaching:
        cond += f" AND coalesce(r.hi_us, {HOUR_US}) > {_us('k.lo - r.bucket')}"
    else:
        cond += " AND r.bucket + r.part * interval '1 microsecond' >= k.lo"
    if key is not None:
        cond = f"r.{key} = k.key AND {cond}"
    ranges = (_RANGES_SRC if src else _RANGES) if key is None else (_KEYS_SRC if src else _KEYS)
    return f"{ranges} CROSS JOIN LATERAL (SELECT * FROM {table} r WHERE {cond} OFFSET 0) r"


# Source columns, state pieces split at hour boundaries (each piece clipped to
# its hour and to [k.lo, k.hi); a piece *starting* before lo is not rebuilt:
# it belongs to a part that stays) and point events (every event in [k.lo,
# k.hi)), with microsecond offsets from their hour and their part (the start
# offset rounded down to the range's part size). Most states lie within one
# hour: they skip the set-returning split.
def _pieces_and_points(key: str | None) -> str:
    columns = (
        "e.event_id, e.site_id, e.worker_id, e.station_id, e.event_type, e.model_version, e.shadow, e.bin"
    )
    return f"""
src AS MATERIALIZED (
    SELECT e.event_id, e.ts, date_bin('1 hour', e.ts, %(origin)s) AS hour, coalesce(e.site_id, '') AS site_id,
           e.worker_id, e.station_id, e.event_type, coalesce(e.model_version, '') AS model_version, e.shadow,
           e.count, e.confidence, e.ts + coalesce(e.effective_duration_s, 0) * interval '1 second' AS ends,
           k.lo, k.hi, k.bin,
           date_bin('1 hour', k.lo - interval '1 microsecond', %(origin)s) + interval '1 hour' AS first
    FROM {_source(key)}
), pieces AS MATERIALIZED (
    SELECT *, (s_us / bin) * bin AS part FROM (
        SELECT *, {_us("s - bucket")} AS s_us, {_us("en - bucket")} AS en_us FROM (
            SELECT e.hour AS bucket, {columns}, e.ts AS s, e.ends AS en
            FROM src e
            WHERE e.event_type <> 'product_count' AND e.ends > e.ts AND e.ts >= e.lo
              AND e.ends <= e.hour + interval '1 hour'
            UNION ALL
            SELECT b.bucket, {columns}, greatest(e.ts, b.bucket), least(e.ends, b.bucket + interval '1 hour')
            FROM src e CROSS JOIN LATERAL generate_series(
                CASE WHEN e.ts >= e.lo THEN e.hour ELSE greatest(e.hour, e.first) END,
                least(e.ends, e.hi) - interval '1 microsecond', interval '1 hour'
            ) AS b(bucket)
            WHERE e.event_type <> 'product_count' AND e.ends > e.ts AND e.ends > e.lo
              AND (e.ts < e.lo OR e.ends > e.hour + interval '1 hour')
        ) p
    ) q
), points AS MATERIALIZED (
    SELECT *, (at_us / bin) * bin AS part FROM (
        SELECT hour AS bucket, *, {_us("ts - hour")} AS at_us FROM src WHERE ts >= lo
    ) q
)"""


# rollup_hour (every dimension: seconds, units, events, confidence) and
# rollup_worker_detail (per worker, model version and shadow flag: the hour's
# state pieces and events as microsecond offsets from the hour, in time
# order) in one pass; the detail arrays in one grouping of pieces and events.
def _worker_hours(key: str | None) -> str:
    order = "ORDER BY at_us, event_id"
    return f"""
WITH {_pieces_and_points(key)}, totals AS (
    INSERT INTO rollup_hour (bucket, site_id, worker_id, station_id, event_type, model_version, shadow, part,
                             seconds, units, events, conf_sum, conf_min, conf_max)
    SELECT bucket, site_id, worker_id, station_id, event_type, model_version, shadow, part,
           coalesce(sum(seconds), 0), sum(units), sum(events), coalesce(sum(conf), 0), min(conf), max(conf)
    FROM (
        SELECT bucket, site_id, worker_id, station_id, event_type, model_version, shadow, part,
               (en_us - s_us)::double precision / 1e6 AS seconds, 0 AS units, 0 AS events,
               NULL::double precision AS conf
        FROM pieces
        UNION ALL
        SELECT bucket, site_id, worker_id, station_id, event_type, model_version, shadow, part, 0,
               CASE WHEN event_type = 'product_count' THEN count ELSE 0 END, 1, confidence
        FROM points
    ) x
    GROUP BY bucket, site_id, worker_id, station_id, event_type, model_version, shadow, part
)
INSERT INTO rollup_worker_detail (bucket, site_id, worker_id, station_id, model_version, shadow, part, hi_us,
                                  state_kind, state_from, state_to, event_at, event_conf, unit_at, unit_count)
SELECT bucket, site_id, worker_id, station_id, model_version, shadow, part,
       greatest(max(to_us), max(at_us + 1) FILTER (WHERE NOT piece)),
       coalesce(array_agg(kind {order}) FILTER (WHERE piece), '{{}}'),
       coalesce(array_agg(at_us {order}) FILTER (WHERE piece), '{{}}'),
       coalesce(array_agg(to_us {order}) FILTER (WHERE piece), '{{}}'),
       coalesce(array_agg(at_us {order}) FILTER (WHERE NOT piece), '{{}}'),
       coalesce(array_agg(conf {order}) FILTER (WHERE NOT piece), '{{}}'),
       coalesce(array_agg(at_us {order}) FILTER (WHERE unit), '{{}}'),
       coalesce(array_agg(n {order}) FILTER (WHERE unit), '{{}}')
FROM (
    SELECT bucket, site_id, worker_id, station_id, model_version, shadow, part, event_id, true AS piece,
           false AS unit, {codes.state_code_sql("event_type")} AS kind, s_us AS at_us, en_us AS to_us,
           NULL::double precision AS conf, 0 AS n
    FROM pieces
    UNION ALL
    SELECT bucket, site_id, worker_id, station_id, model_version, shadow, part, event_id, false,
           event_type = 'product_count' AND count > 0, NULL, at_us, NULL, confidence, count
    FROM points
) x
GROUP BY bucket, site_id, worker_id, station_id, model_version, shadow, part
"""


def _worker_hour_totals(key: str | None) -> str:
    return f"""
INSERT INTO rollup_worker_hour (bucket, site_id, worker_id, part, working_s, idle_s, absent_s, units, events)
SELECT r.bucket, r.site_id, r.worker_id, r.part,
       coalesce(sum(r.seconds) FILTER (WHERE r.event_type = 'working'), 0),
       coalesce(sum(r.seconds) FILTER (WHERE r.event_type = 'idle'), 0),
       coalesce(sum(r.seconds) FILTER (WHERE r.event_type = 'absent'), 0),
       sum(r.units), sum(r.events)
FROM {_rows(key, "rollup_hour")}
WHERE NOT r.shadow
GROUP BY r.bucket, r.site_id, r.worker_id, r.part
"""


# Per station and hour, production events only, from the (just rebuilt)
# worker detail rows of that station, not from events: the union of the state
# pieces per kind (takt.store.codes: occupied, working, observed), by one
# sweep in start order. A piece starts a new island of its kind when it
# begins after every earlier piece of that kind has ended (the running
# maximum of their ends); the island ends at that maximum just before the
# next island starts, the last at the kind's last end. rollup_station_hour
# gets the union seconds (sums of island lengths) and counts,
# rollup_station_detail the islands and the station's event and unit offsets.
# From a range's lo on (``cut``, in its first hour): the union of what the
# pieces cover from the cut on, read from the worker rows that reach past it
# (``hi_us``); its islands are split at the range's part boundaries, so the
# parts of a station-hour are disjoint in time and add up.
def _station_hours(key: str | None) -> str:
    kinds = [(kind, codes.members_sql(kind, "k")) for kind in codes.ISLAND_MEMBERS]
    running = ",\n           ".join(
        f"max(t) FILTER (WHERE {member}) OVER {frame} AS {name}_{kind}"
        for kind, member in kinds
        for frame, name in (("w", "prev"), ("p", "last"))
    )
    values = ", ".join(f"('{kind}'::\"char\", prev_{kind}, last_{kind}, {member})" for kind, member in kinds)
    # Few pieces start an island: test that before expanding each piece into its kinds.
    o, w, b = (codes.quoted(k) for k in (codes.OCCUPIED, codes.WORKING_ISLAND, codes.OBSERVED))
    any_start = " OR ".join(
        f"({member} AND (prev_{kind} IS NULL OR f > prev_{kind}))" for kind, member in kinds
    )
    station = "bucket, site_id, station_id"
    return f"""
WITH detail AS MATERIALIZED (
    SELECT r.*, k.bin, greatest({_us("k.lo - r.bucket")}, 0) AS cut
    FROM {_rows(key, "rollup_worker_detail", src=True, reaching=True)} WHERE NOT r.shadow
), swept AS (
    SELECT {station}, bin, f, k,
           {running}
    FROM (
        SELECT d.bucket, d.site_id, d.station_id, d.bin, x.k, greatest(x.f, d.cut) AS f, x.t
        FROM detail d CROSS JOIN LATERAL unnest(d.state_kind, d.state_from, d.state_to) AS x(k, f, t)
        WHERE x.t > d.cut
    ) x
    WINDOW w AS (PARTITION BY {station} ORDER BY f, t ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
           p AS (PARTITION BY {station})
), starts AS (
    SELECT {station}, bin, i.kind, f, i.prev, i.last
    FROM swept CROSS JOIN LATERAL (VALUES {values}) AS i(kind, prev, last, member)
    WHERE ({any_start}) AND i.member AND (i.prev IS NULL OR f > i.prev)
), islands AS (
    SELECT {station}, bin, kind, f,
           coalesce(lead(prev) OVER (PARTITION BY {station}, kind ORDER BY f), last) AS t
    FROM starts
), pieces AS (
    SELECT {station}, kind, p.part, greatest(f, p.part) AS f, least(t, p.part + bin) AS t
    FROM islands CROSS JOIN LATERAL generate_series((f / bin) * bin, t - 1, bin) AS p(part)
), unions AS (
    SELECT {station}, part,
           coalesce(sum((t - f)::double precision / 1e6) FILTER (WHERE kind = {o}), 0) AS occupied_s,
           coalesce(sum((t - f)::double precision / 1e6) FILTER (WHERE kind = {w}), 0) AS working_s,
           coalesce(sum((t - f)::double precision / 1e6) FILTER (WHERE kind = {b}), 0) AS observed_s,
           array_agg(kind ORDER BY kind, f) AS island_kind,
           array_agg(f ORDER BY kind, f) AS island_from,
           array_agg(t ORDER BY kind, f) AS island_to
    FROM pieces GROUP BY {station}, part
), counts AS (
    SELECT {station}, (t / bin) * bin AS part, count(*) AS events, array_agg(t ORDER BY t) AS event_at
    FROM detail CROSS JOIN LATERAL unnest(event_at) AS e(t)
    WHERE t >= cut
    GROUP BY {station}, 4
), units AS (
    SELECT {station}, (t / bin) * bin AS part, sum(n) AS units, array_agg(t ORDER BY t, n) AS unit_at,
           array_agg(n ORDER BY t, n) AS unit_count
    FROM detail CROSS JOIN LATERAL unnest(unit_at, unit_count) AS u(t, n)
    WHERE t >= cut
    GROUP BY {station}, 4
), joined AS MATERIALIZED (
    SELECT * FROM (
        SELECT {station}, part FROM unions UNION SELECT {station}, part FROM counts
    ) x
    LEFT JOIN unions USING ({station}, part) LEFT JOIN counts USING ({station}, part)
    LEFT JOIN units USING ({station}, part)
), totals AS (
    INSERT INTO rollup_station_hour (bucket, site_id, station_id, part, occupied_s, working_s, observed_s,
                                     units, events)
    SELECT {station}, part, coalesce(occupied_s, 0), coalesce(working_s, 0), coalesce(observed_s, 0),
           coalesce(units, 0), coalesce(events, 0)
    FROM joined
)
INSERT INTO rollup_station_detail (bucket, site_id, station_id, part, island_kind, island_from, island_to,
                                   event_at, unit_at, unit_count)
SELECT {station}, part, coalesce(island_kind, '{{}}'), coalesce(island_from, '{{}}'),
       coalesce(island_to, '{{}}'), coalesce(event_at, '{{}}'), coalesce(unit_at, '{{}}'),
       coalesce(unit_count, '{{}}')
FROM joined
"""


_MODEL_HOURS = f"""
INSERT INTO rollup_model_hour (bucket, site_id, model_version, shadow, part, working_s, idle_s, absent_s,
                               units, events, conf_sum)
SELECT r.bucket, r.site_id, r.model_version, r.shadow, r.part,
       coalesce(sum(r.seconds) FILTER (WHERE r.event_type = 'working'), 0),
       coalesce(sum(r.seconds) FILTER (WHERE r.event_type = 'idle'), 0),
       coalesce(sum(r.seconds) FILTER (WHERE r.event_type = 'absent'), 0),
       sum(r.units), sum(r.events), sum(r.conf_sum)
FROM {_rows(None, "rollup_hour")}
GROUP BY r.bucket, r.site_id, r.model_version, r.shadow, r.part
"""


# Units and rejects per station-hour and SKU (rollup_units_hour, production
# product_count events) and per station-day (rollup_units_day, the sum of its
# hours). Units are point events: a station-hour's rows follow from that hour's
# events alone, no lookback. One statement: the hour rows whose key is gone are
# deleted, the others upserted (disjoint sets, so no row is touched twice); the
# touched days are re-summed from their hours outside the rebuilt ranges (as
# stored: every CTE sees the table before the statement) plus the fresh rows,
# and replaced the same way.
def _units_hours(key: str | None) -> str:
    ranges = _RANGES if key is None else _KEYS
    source = (
        f"{_RANGES} JOIN events e ON e.ts >= k.lo AND e.ts < k.hi"
        if key is None
        else f"{_KEYS} CROSS JOIN LATERAL (SELECT * FROM events e WHERE e.{key} = k.key "
        f"AND e.ts >= k.lo AND e.ts < k.hi OFFSET 0) e"
    )
    same = "f.bucket = r.bucket AND f.site_id = r.site_id AND f.station_id = r.station_id AND f.sku = r.sku"
    columns = "bucket, site_id, station_id, sku, units, rejected, reported, events"
    update = (
        "ON CONFLICT (bucket, site_id, station_id, sku) DO UPDATE SET units = excluded.units, "
        "rejected = excluded.rejected, reported = excluded.reported, events = excluded.events"
    )
    station = "" if key is None else "r.station_id = t.station_id AND "
    rebuilt = "" if key is None else "k.key = r.station_id AND "
    touched_station = "NULL::text" if key is None else "k.key"
    return f"""
WITH fresh AS MATERIALIZED (
    SELECT date_bin('1 hour', e.ts, %(origin)s) AS bucket, coalesce(e.site_id, '') AS site_id, e.station_id,
           coalesce(e.sku, '') AS sku, sum(e.count) AS units, sum(coalesce(e.rejected, 0)) AS rejected,
           coalesce(sum(e.count) FILTER (WHERE e.rejected IS NOT NULL), 0) AS reported, count(*) AS events
    FROM {source}
    WHERE e.event_type = 'product_count' AND NOT e.shadow
    GROUP BY 1, 2, 3, 4
), gone AS (
    DELETE FROM {UNITS_TABLE} u USING {_rows(key, UNITS_TABLE, whole=True)}
    WHERE u.bucket = r.bucket AND u.site_id = r.site_id AND u.station_id = r.station_id AND u.sku = r.sku
      AND NOT EXISTS (SELECT 1 FROM fresh f WHERE {same})
), hours AS (
    INSERT INTO {UNITS_TABLE} ({columns}) SELECT * FROM fresh {update}
), touched AS MATERIALIZED (
    SELECT DISTINCT {touched_station} AS station_id, d.day
    FROM {ranges} CROSS JOIN LATERAL generate_series(
        date_bin('1 day', k.lo, %(origin)s), k.hi - interval '1 microsecond', interval '1 day'
    ) AS d(day)
), days AS MATERIALIZED (
    SELECT date_bin('1 day', x.bucket, %(origin)s) AS bucket, x.site_id, x.station_id, x.sku,
           sum(x.units) AS units, sum(x.rejected) AS rejected, sum(x.reported) AS reported,
           sum(x.events) AS events
    FROM (
        SELECT r.{columns.replace(", ", ", r.")}
        FROM touched t CROSS JOIN LATERAL (
            SELECT * FROM {UNITS_TABLE} r
            WHERE {station}r.bucket >= t.day AND r.bucket < t.day + interval '1 day' OFFSET 0
        ) r
        WHERE NOT EXISTS (SELECT 1 FROM {ranges} WHERE {rebuilt}r.bucket >= k.lo AND r.bucket < k.hi)
        UNION ALL
        SELECT * FROM fresh
    ) x
    GROUP BY 1, 2, 3, 4
), days_gone AS (
    DELETE FROM {UNITS_DAY_TABLE} r USING touched t
    WHERE {station}r.bucket = t.day AND NOT EXISTS (SELECT 1 FROM days f WHERE {same})
)
INSERT INTO {UNITS_DAY_TABLE} ({columns}) SELECT * FROM days {update}
"""


# Day tables: (day table, hour table, key column or None, summed columns).
_DAYS = (
    ("rollup_worker_day", "rollup_worker_hour", "worker_id", "working_s, idle_s, absent_s, units, events"),
    (
        "rollup_station_day",
        "rollup_station_hour",
        "station_id",
        "occupied_s, working_s, observed_s, units, events",
    ),
    (
        "rollup_model_day",
        "rollup_model_hour",
        None,
        "working_s, idle_s, absent_s, units, events, conf_sum",
    ),
)


def _day_totals(day_table: str, hour_table: str, key: str | None, values: str, by_key: bool) -> str:
    dims = "model_version, shadow" if key is None else key
    group = ", ".join(f"r.{d.strip()}" for d in dims.split(","))
    sums = ", ".join(f"sum(r.{v.strip()})" for v in values.split(","))
    return (
        f"INSERT INTO {day_table} (bucket, site_id, {dims}, {values}) "
        f"SELECT date_bin('1 day', r.bucket, %(origin)s), r.site_id, {group}, {sums} "
        f"FROM {_rows(key if by_key else None, hour_table)} GROUP BY 1, r.site_id, {group}"
    )


def _delete(
    conn: psycopg.Connection[Any],
    tables: Iterable[str],
    key: str | None,
    params: dict[str, Any],
    *,
    parts: bool = True,
) -> None:
    """Delete the rows of ``tables`` in the ranges (of the keys) of ``params`` (as made by _key_params
    or _range_params): in a range's first hour the parts from its ``lo`` on (``parts``: per-hour
    tables; day tables have none and day-aligned ranges).

    One statement per distinct range, keys as an array: a join with the ranges
    would be planned as a sequential scan of the table.
    """
    by_range: dict[Range, list[str]] = defaultdict(list)
    for i, (lo, hi) in enumerate(zip(params["los"], params["his"], strict=True)):
        by_range[(lo, hi)].append(params["keys"][i] if key is not None else "")
    which = f"{key} = ANY(%(keys)s) AND " if key is not None else ""
    part = " AND bucket + part * interval '1 microsecond' >= %(lo)s" if parts else ""
    deletes = ", ".join(
        f"d{i} AS (DELETE FROM {table} WHERE {which}bucket >= %(first)s AND bucket < %(hi)s{part})"
        for i, table in enumerate(tables)
    )
    for (lo, hi), keys in sorted(by_range.items()):
        values: dict[str, Any] = {"lo": lo, "hi": hi, "first": floor_hour(lo)}
        if key is not None:
            values["keys"] = keys
        conn.execute(f"WITH {deletes} SELECT 1", values)


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

# The state rule (takt.states) over one partition's events [lo, hi], looking
# on by the gap for their successors.
_DERIVE_RANGE = f"""
WITH part AS (
    SELECT event_id, ts, duration_s, effective_duration_s AS old_eff,
           {states.next_ts_sql(partition_by="")} AS next_ts
    FROM events
    WHERE {_PARTITION} AND ts >= %(lo)s AND ts <= %(hi)s + %(gap)s * interval '1 second'
), derived AS (
    SELECT p.event_id, p.ts, p.old_eff,
           {states.derived_duration_sql("p", states.later_sql(_partition("l")))} AS eff
    FROM part p WHERE p.ts <= %(hi)s
)
UPDATE events e SET effective_duration_s = d.eff
FROM derived d
WHERE e.event_id = d.event_id AND e.ts = d.ts AND e.effective_duration_s IS DISTINCT FROM d.eff
RETURNING e.station_id, e.ts, greatest(d.eff, coalesce(d.old_eff, 0))
"""

_DERIVE_ALL = f"""
UPDATE events e SET effective_duration_s = d.eff
FROM (
    SELECT event_id, ts, {states.derived_duration_sql("", "false")} AS eff
    FROM (
        SELECT event_id, ts, duration_s, {states.next_ts_sql()} AS next_ts
        FROM events WHERE event_type <> 'product_count'
    ) x
) d
WHERE e.event_id = d.event_id AND e.ts = d.ts AND e.effective_duration_s IS DISTINCT FROM d.eff
"""


@dataclass(frozen=True, slots=True)
class RefreshResult:
    invalidations: int
    durations_changed: int
    # Worker-hours plus station-hours whose rollup rows were rebuilt.
    hours_rebuilt: int
    skipped: bool = False
    # Invalidations moved to the quarantine instead (times outside the supported range).
    quarantined: int = 0


def _tune(conn: psycopg.Connection[Any]) -> None:
    """Settings for this transaction. JIT off: the statements' estimates (generate_series guesses
    1,000 rows per event) would have PostgreSQL spend ~0.5 s compiling queries that run in
    milliseconds. More sort memory: a busy hour's pieces and events are sorted to build the detail
    arrays and the station unions, and the default 4 MB spills them to disk."""
    conn.execute("SET LOCAL jit = off")
    conn.execute("SET LOCAL work_mem = '64MB'")
    conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")


def floor_hour(ts: datetime) -> datetime:
    return ORIGIN + ((ts - ORIGIN) // HOUR) * HOUR


def ceil_hour(ts: datetime) -> datetime:
    floored = floor_hour(ts)
    return floored if floored == ts else floored + HOUR


def floor_day(ts: datetime) -> datetime:
    return ORIGIN + ((ts - ORIGIN) // DAY) * DAY


def ceil_day(ts: datetime) -> datetime:
    floored = floor_day(ts)
    return floored if floored == ts else floored + DAY


def merge_ranges(ranges: Iterable[Range], unit: timedelta = HOUR, *, inclusive: bool = True) -> list[Range]:
    """Sorted, non-overlapping cover of the given time ranges, aligned to ``unit`` (hours or days).

    Ends count as included by default: a range reaching exactly 09:00 covers
    the 09:00 hour too, because an invalidation's ``max_ts`` is an event's
    timestamp (a point event at 09:00:00 belongs to that hour); for a state's
    exclusive end that rebuilds one hour more than needed, which is harmless.
    ``inclusive=False`` for half-open ranges (hours already rebuilt, as days).
    """

    def floor(ts: datetime) -> datetime:
        return ORIGIN + ((ts - ORIGIN) // unit) * unit

    def end(a: datetime, b: datetime) -> datetime:
        last = floor(b) + unit if inclusive or floor(b) != b else b
        return max(last, floor(a) + unit)

    merged: list[Range] = []
    for lo, hi in sorted((floor(a), end(a, max(a, b))) for a, b in ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def lookback_s(conn: psycopg.Connection[Any]) -> float:
    """How far before a range a state may start and still reach into it (the longest stored)."""
    row = conn.execute("SELECT max_duration_s FROM rollup_meta WHERE id = 1").fetchone()
    return float(row[0]) if row else 0.0


def _key_params(ranges: Mapping[str, list[Range]]) -> dict[str, Any]:
    keys: list[str] = []
    los: list[datetime] = []
    his: list[datetime] = []
    for key in sorted(ranges):
        for lo, hi in ranges[key]:
            keys.append(key)
            los.append(lo)
            his.append(hi)
    return {"keys": keys, "los": los, "his": his, "origin": ORIGIN}


def _range_params(ranges: list[Range]) -> dict[str, Any]:
    return {"los": [r[0] for r in ranges], "his": [r[1] for r in ranges], "origin": ORIGIN}


def _hours(ranges: Iterable[Range]) -> int:
    return sum((hi - floor_hour(lo)) // HOUR for lo, hi in ranges)


def merge_spans(ranges: Iterable[Range], *, inclusive: bool = True) -> list[Range]:
    """Like :func:`merge_ranges` (hours), but each range keeps its exact start: the earliest start
    among the ranges merged into it (a round rewrites an hour from there on, see _plan)."""
    out: list[Range] = []
    for a, b in sorted(ranges):
        end = merge_ranges([(a, max(a, b))], inclusive=inclusive)[0][1]
        if out and floor_hour(a) <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((a, end))
    return out


# The first hour of each range: the latest part of the key-hour at or before
# the range's start, and the events the key-hour holds.
_FIRST_HOURS = """
SELECT (SELECT max(d.part) FROM {detail} d WHERE d.{key} = k.key AND d.bucket = k.h AND d.part <= k.o),
       (SELECT coalesce(sum(t.events), 0) FROM {totals} t WHERE t.{key} = k.key AND t.bucket = k.h)
FROM unnest(%(keys)s::text[], %(hs)s::timestamptz[], %(os)s::bigint[]) WITH ORDINALITY AS k(key, h, o, i)
ORDER BY k.i
"""


def _plan(
    conn: psycopg.Connection[Any],
    key: str,
    spans: Mapping[str, list[Range]],
    recent: datetime | None,
    lookback: float,
) -> dict[str, Any]:
    """The ranges a round rewrites, per key: where each starts, its part size and where its scan starts.

    A key-hour is written in parts (PART_US) when it is busy (PART_MIN_EVENTS events stored) and
    recent (not before ``recent``); otherwise as one row (a part of HOUR_US). In parts, a range
    starts at the latest stored part at or before its first changed element: the rows before it
    hold only elements that start before it (they end where the next part begins) and did not
    change, the rows from it on are rewritten. As one row, it starts at its hour.
    """
    detail, totals = (
        ("rollup_worker_detail", "rollup_worker_hour")
        if key == "worker_id"
        else ("rollup_station_detail", "rollup_station_hour")
    )
    rows = [(k, lo, hi) for k in sorted(spans) for lo, hi in spans[k]]
    firsts = conn.execute(
        _FIRST_HOURS.format(detail=detail, totals=totals, key=key),
        {
            "keys": [r[0] for r in rows],
            "hs": [floor_hour(r[1]) for r in rows],
            "os": [(r[1] - floor_hour(r[1])) // MICROSECOND for r in rows],
        },
    ).fetchall()
    los: list[datetime] = []
    bins: list[int] = []
    scans: list[datetime] = []
    for (_, lo, hi), (stored_part, events) in zip(rows, firsts, strict=True):
        hour = floor_hour(lo)
        offset = (lo - hour) // MICROSECOND
        if recent is not None and hour >= recent and events >= PART_MIN_EVENTS:
            part = stored_part if stored_part is not None else offset // PART_US * PART_US
            bins.append(PART_US)
        else:
            part = 0
            bins.append(HOUR_US)
        start = hour + part * MICROSECOND
        los.append(start)
        # States from before the start reach it only from its hour on; they reach a later hour
        # of the range from at most the lookback before it.
        later = ceil_hour(start)
        scans.append(min(start, later - timedelta(seconds=lookback)) if later < hi else start)
    return {
        "keys": [r[0] for r in rows],
        "los": los,
        "his": [r[2] for r in rows],
        "bins": bins,
        "scans": scans,
        "origin": ORIGIN,
    }


def _spans(params: Mapping[str, Any]) -> dict[str, list[Range]]:
    out: dict[str, list[Range]] = defaultdict(list)
    for k, lo, hi in zip(params["keys"], params["los"], params["his"], strict=True):
        out[k].append((lo, hi))
    return out


# Key-hours in parts that are no longer recent: rebuilt as one row each.
_STALE_PARTS = """
SELECT DISTINCT {key}, bucket FROM {table} WHERE part > 0 AND bucket < %(recent)s
ORDER BY bucket, {key} LIMIT %(n)s
"""

_DETAIL_STATIONS = (
    "SELECT DISTINCT r.station_id, greatest(r.bucket, k.lo) "
    f"FROM {_rows('worker_id', 'rollup_worker_detail')}"
)


def rebuild_keys(
    conn: psycopg.Connection[Any],
    workers: Mapping[str, Iterable[Range]],
    stations: Mapping[str, Iterable[Range]],
) -> int:
    """Recompute the rollup rows of the given workers' and stations' ranges (and their days, and the
    model rows of those hours) from events; returns worker-hours plus station-hours rebuilt.

    A range is rewritten from the part holding its start on (see _plan); key-hours in parts that
    are no longer recent are compacted into one row on the way (a few per call).
    """
    lookback = lookback_s(conn)
    newest = conn.execute("SELECT max(ts) FROM events").fetchone()
    recent = floor_hour(newest[0]) - PART_RECENT if newest and newest[0] is not None else None
    wanted: dict[str, list[Range]] = defaultdict(list)
    for w, ranges in workers.items():
        wanted[w].extend(ranges)
    by_station: dict[str, list[Range]] = defaultdict(list)
    for st, ranges in stations.items():
        by_station[st].extend(ranges)
    if recent is not None:
        for table, key, out in (
            ("rollup_worker_detail", "worker_id", wanted),
            ("rollup_station_detail", "station_id", by_station),
        ):
            stale = conn.execute(
                _STALE_PARTS.format(table=table, key=key), {"recent": recent, "n": COMPACT_PER_ROUND}
            ).fetchall()
            for k, bucket in stale:
                out[k].append((bucket, bucket))
    worker_spans = {w: merge_spans(r) for w, r in wanted.items()}
    worker_spans = {w: r for w, r in worker_spans.items() if r}
    rebuilt = 0
    if worker_spans:
        params = {**_plan(conn, "worker_id", worker_spans, recent, lookback)}
        planned = _spans(params)
        # A station-hour is built from the worker detail rows at the station: every station a
        # rebuilt worker-hour held before or holds after is rebuilt too, from where the worker's
        # rows were. (Events committed while a round runs can be among those its statements read,
        # at stations its queue rows do not name; their own rows stay queued.)
        held = conn.execute(_DETAIL_STATIONS, params).fetchall()
        _delete(conn, WORKER_HOUR_TABLES, "worker_id", params)
        conn.execute(_worker_hours("worker_id"), params)
        held += conn.execute(_DETAIL_STATIONS, params).fetchall()
        for st, at in held:
            by_station[st].append((at, at))
        conn.execute(_worker_hour_totals("worker_id"), params)
        days = {w: merge_ranges(r, DAY, inclusive=False) for w, r in planned.items()}
        _rebuild_days(conn, _DAYS[0], _key_params(days), by_key=True)
        # Model rows sum every worker of an hour: rebuilt per touched hour, from the earliest
        # start among the workers rewritten in it.
        hours = merge_spans((r for ranges in planned.values() for r in ranges), inclusive=False)
        model = _range_params(hours)
        _delete(conn, ["rollup_model_hour"], None, model)
        conn.execute(_MODEL_HOURS, model)
        _rebuild_days(conn, _DAYS[2], _range_params(merge_ranges(hours, DAY, inclusive=False)), by_key=False)
        rebuilt += sum(_hours(r) for r in planned.values())
    station_spans = {s: merge_spans(r) for s, r in by_station.items()}
    station_spans = {s: r for s, r in station_spans.items() if r}
    if station_spans:
        params = _plan(conn, "station_id", station_spans, recent, lookback)
        planned = _spans(params)
        _delete(conn, STATION_HOUR_TABLES, "station_id", params)
        conn.execute(_station_hours("station_id"), params)
        # Units are whole station-hours (point events, no parts): their own hour-aligned ranges.
        units = _key_params({s: merge_ranges(r) for s, r in station_spans.items()})
        conn.execute(_units_hours("station_id"), units)
        days = {s: merge_ranges(r, DAY, inclusive=False) for s, r in planned.items()}
        _rebuild_days(conn, _DAYS[1], _key_params(days), by_key=True)
        rebuilt += sum(_hours(r) for r in planned.values())
    return rebuilt


def _rebuild_days(
    conn: psycopg.Connection[Any],
    days: tuple[str, str, str | None, str],
    params: dict[str, Any],
    *,
    by_key: bool,
) -> None:
    """Re-sum the day rows of the given (day-aligned) ranges, per key or all keys, from their hour rows."""
    table, hour_table, key, values = days
    _delete(conn, [table], key if by_key else None, params, parts=False)
    conn.execute(_day_totals(table, hour_table, key, values, by_key), params)


def rebuild_hours(conn: psycopg.Connection[Any], lo: datetime, hi: datetime) -> int:
    """Recompute every rollup row with a bucket in [lo, hi) (hour-aligned), all keys, from events."""
    params = {
        **_range_params([(lo, hi)]),
        "bins": [HOUR_US],
        "scans": [lo - timedelta(seconds=lookback_s(conn))],
    }
    _delete(conn, ROLLUP_HOUR_TABLES, None, params)
    conn.execute(_worker_hours(None), params)
    conn.execute(_worker_hour_totals(None), params)
    conn.execute(_station_hours(None), params)
    conn.execute(_units_hours(None), params)
    conn.execute(_MODEL_HOURS, params)
    # Days containing a rebuilt hour are re-summed from their (complete) hours.
    days = _range_params([(floor_day(lo), ceil_day(hi))])
    for day_tables in _DAYS:
        _rebuild_days(conn, day_tables, days, by_key=False)
    return (hi - lo) // HOUR


@dataclass(slots=True)
class _Derived:
    changed: int = 0
    # (station, start, end) of every event whose duration changed (old or new end, the later).
    touched: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    # The longest duration among them and the new rows: rollup_meta's lookback must cover it.
    max_duration_s: float = 0.0


def _derive_worker_range(
    conn: psycopg.Connection[Any], worker: str, station: str, min_ts: datetime, max_ts: datetime, gap: float
) -> tuple[_Derived, Range]:
    """Re-derive durations around [min_ts, max_ts]; returns what changed and the new rows' time range."""
    base = {"worker": worker, "station": station, "gap": gap}
    # Shadow partitions with events within the gap before the range (a deleted shadow event leaves
    # no row behind, but its predecessor's duration changes) or in it: a partial index of shadow
    # events (migration 0008) keeps this from reading the worker's production events.
    partitions = conn.execute(
        "SELECT DISTINCT coalesce(model_version, '') FROM events "
        "WHERE worker_id = %(worker)s AND (%(worker)s <> 'unknown' OR station_id = %(station)s) "
        "AND shadow AND ts >= %(lo)s AND ts <= %(hi)s",
        {**base, "lo": min_ts - timedelta(seconds=gap), "hi": max_ts},
    ).fetchall()
    # A deleted event leaves no row behind; its production predecessor still changes.
    keys = {(False, ""), *((True, str(m)) for (m,) in partitions)}
    derived = _Derived()
    for shadow, model in sorted(keys):
        params = {**base, "shadow": shadow, "model": model}
        # Only the partition's state event before the range (whose "next" may have changed) and
        # the events from it on can change: an earlier event's next is at or before that one.
        # (The live tail's C is the same event, api.metrics.live._STARTS.)
        prev = conn.execute(
            f"SELECT max(ts) FROM events WHERE {_PARTITION} AND ts < %(lo)s", {**params, "lo": min_ts}
        ).fetchone()
        lo = prev[0] if prev and prev[0] is not None else min_ts
        rows = conn.execute(_DERIVE_RANGE, {**params, "lo": lo, "hi": max_ts}).fetchall()
        derived.changed += len(rows)
        derived.touched.extend((st, ts, ts + timedelta(seconds=float(eff))) for st, ts, eff in rows)
    # The new rows themselves (their counts, and explicit durations, which the
    # UPDATE above leaves alone because they are already right).
    end = conn.execute(
        "SELECT max(ts + coalesce(effective_duration_s, 0) * interval '1 second'), max(effective_duration_s) "
        "FROM events WHERE worker_id = %(worker)s AND (%(worker)s <> 'unknown' OR station_id = %(station)s) "
        "AND ts >= %(lo)s AND ts <= %(hi)s",
        {**base, "lo": min_ts, "hi": max_ts},
    ).fetchone()
    new_rows = (min_ts, max(max_ts, end[0]) if end and end[0] else max_ts)
    derived.max_duration_s = max(
        [float(end[1]) if end and end[1] is not None else 0.0]
        + [(b - a).total_seconds() for _, a, b in derived.touched]
    )
    return derived, new_rows


# Invalidations whose times no derivation can handle (outside the contract's
# time range: events stored before the range was enforced) leave the queue
# for the quarantine before they are read; reading one could already fail.
_QUARANTINE_OUT_OF_RANGE = """
WITH head AS (SELECT id FROM event_invalidations {where} ORDER BY id LIMIT %(batch)s),
bad AS (
    DELETE FROM event_invalidations i USING head
    WHERE i.id = head.id AND (i.min_ts < %(lo)s OR i.max_ts >= %(hi)s OR i.max_ts < i.min_ts)
    RETURNING i.*
)
INSERT INTO event_invalidations_quarantine (id, worker_id, station_id, min_ts, max_ts, created_at, reason)
SELECT id, worker_id, station_id, min_ts, max_ts, created_at, %(reason)s FROM bad
"""
_OUT_OF_RANGE = f"time range outside [{MIN_TIME.isoformat()}, {MAX_TIME.isoformat()})"


def refresh(
    conn: psycopg.Connection[Any], *, max_gap_s: float, batch: int = 1000, ids: Sequence[int] | None = None
) -> RefreshResult:
    """One round: consume up to ``batch`` invalidations (of ``ids`` only, if given).

    Commits; safe to run concurrently.
    """
    with conn.transaction():
        locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,)).fetchone()
        if not locked or not locked[0]:
            return RefreshResult(0, 0, 0, skipped=True)
        _tune(conn)
        where = "" if ids is None else "WHERE id = ANY(%(ids)s)"
        head = {"batch": batch, "ids": None if ids is None else list(ids)}
        quarantined = conn.execute(
            _QUARANTINE_OUT_OF_RANGE.format(where=where),
            {**head, "lo": MIN_TIME, "hi": MAX_TIME, "reason": _OUT_OF_RANGE},
        ).rowcount
        if quarantined:
            logger.error("rollups: quarantined %d invalidation(s): %s", quarantined, _OUT_OF_RANGE)
        rows = conn.execute(
            "SELECT id, worker_id, station_id, min_ts, max_ts FROM event_invalidations "
            f"{where} ORDER BY id LIMIT %(batch)s",
            head,
        ).fetchall()
        if not rows:
            return RefreshResult(0, 0, 0, quarantined=quarantined)
        # Coalesce the queue per (worker, station) so a burst of small batches
        # costs one derivation each; remember the stations the new rows are at.
        spans: dict[tuple[str, str], tuple[datetime, datetime, set[str]]] = {}
        for _, worker, station, lo, hi in rows:
            key = (worker, station if worker == "unknown" else "")
            old = spans.get(key)
            spans[key] = (
                (min(old[0], lo), max(old[1], hi), old[2] | {station}) if old else (lo, hi, {station})
            )
        changed = 0
        longest = 0.0
        workers: dict[str, list[Range]] = defaultdict(list)
        stations: dict[str, list[Range]] = defaultdict(list)
        for (worker, station), (lo, hi, at) in spans.items():
            derived, new_rows = _derive_worker_range(conn, worker, station, lo, hi, max_gap_s)
            changed += derived.changed
            longest = max(longest, derived.max_duration_s)
            workers[worker].append(new_rows)
            for st in at:
                stations[st].append(new_rows)
            for st, a, b in derived.touched:
                workers[worker].append((a, b))
                stations[st].append((a, b))
        conn.execute(
            "UPDATE rollup_meta SET max_duration_s = greatest(max_duration_s, %s) WHERE id = 1", (longest,)
        )
        hours = rebuild_keys(conn, workers, stations)
        conn.execute("DELETE FROM event_invalidations WHERE id = ANY(%s)", ([r[0] for r in rows],))
        conn.execute("UPDATE rollup_meta SET refreshed_at = now() WHERE id = 1")
    logger.debug("rollups: %d invalidations, %d durations, %d key-hours", len(rows), changed, hours)
    return RefreshResult(len(rows), changed, hours, quarantined=quarantined)


def refresh_all(conn: psycopg.Connection[Any], *, max_gap_s: float, batch: int = 1000) -> int:
    """Run rounds until the queue is empty (tests, scripts); returns invalidations consumed."""
    total = 0
    while True:
        result = refresh(conn, max_gap_s=max_gap_s, batch=batch)
        total += result.invalidations
        if result.skipped or (result.invalidations == 0 and result.quarantined == 0):
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
        _tune(conn)
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
        if derive:
            conn.execute("UPDATE rollup_meta SET max_state_gap_s = %s", (max_gap_s,))
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


def rebuild_units(conn: psycopg.Connection[Any]) -> None:
    """Rebuild ``rollup_units_hour`` alone from events (after a bulk edit of units' SKUs or rejects,
    which changes no duration and no other rollup)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        _tune(conn)
        conn.execute(f"TRUNCATE {UNITS_TABLE}, {UNITS_DAY_TABLE}")
        row = conn.execute(
            "SELECT min(ts), max(ts) FROM events WHERE event_type = 'product_count'"
        ).fetchone()
        if row and row[0] is not None:
            conn.execute(_units_hours(None), _range_params([(floor_hour(row[0]), floor_hour(row[1]) + HOUR)]))


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
        ("rollup_worker_detail", "worker_id"),
        ("rollup_station_hour", "station_id"),
        ("rollup_station_detail", "station_id"),
        ("rollup_worker_day", "worker_id"),
        ("rollup_station_day", "station_id"),
        ("rollup_model_hour", "model_version"),
        ("rollup_model_day", "model_version"),
        (UNITS_TABLE, "station_id"),
        (UNITS_DAY_TABLE, "station_id"),
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


def quarantine_invalidations(conn: psycopg.Connection[Any], ids: Sequence[int], reason: str) -> int:
    """Move invalidations from the queue to ``event_invalidations_quarantine``; returns how many."""
    with conn.transaction():
        cur = conn.execute(
            "WITH moved AS (DELETE FROM event_invalidations WHERE id = ANY(%s) RETURNING *) "
            "INSERT INTO event_invalidations_quarantine "
            "(id, worker_id, station_id, min_ts, max_ts, created_at, reason) "
            "SELECT id, worker_id, station_id, min_ts, max_ts, created_at, %s FROM moved",
            (list(ids), reason[:1000]),
        )
        return cur.rowcount


def isolate_poison(
    conn: psycopg.Connection[Any], *, max_gap_s: float, batch: int = ROUND_INVALIDATIONS
) -> int:
    """After a failed round: refresh the head of the queue in halves, quarantine what fails alone.

    Invalidations that refresh fine are consumed on the way; one that fails on
    its own with an error from its data (:func:`~takt.periodic.is_poison`) is
    quarantined with the error as the reason. Returns how many were quarantined.
    """
    ids = [r[0] for r in conn.execute("SELECT id FROM event_invalidations ORDER BY id LIMIT %s", (batch,))]
    quarantined = 0

    def split(part: list[int]) -> None:
        nonlocal quarantined
        try:
            quarantined += refresh(conn, max_gap_s=max_gap_s, batch=len(part), ids=part).quarantined
            return
        except Exception as exc:
            if not is_poison(exc):
                raise
            if len(part) == 1:
                reason = f"{type(exc).__name__}: {str(exc).strip()}"
                quarantined += quarantine_invalidations(conn, part, reason)
                logger.error("rollups: quarantined invalidation %d: %s", part[0], reason)
                return
        middle = len(part) // 2
        split(part[:middle])
        split(part[middle:])

    if ids:
        split(ids)
    return quarantined


class RollupRefresher(PeriodicDatabaseTask):
    """Background thread: a refresh round every ``interval_s`` seconds until stopped.

    An invalidation that makes a round fail is quarantined (:func:`isolate_poison`).
    """

    def __init__(
        self,
        database_url: str,
        *,
        max_gap_s: float,
        interval_s: float = 2.0,
        max_share: float = 1.0,
        failure_counter: Counter | None = None,
        quarantine_counter: Counter | None = None,
    ) -> None:
        super().__init__(
            "rollup-refresher",
            database_url,
            interval_s,
            max_share=max_share,
            failure_counter=failure_counter,
            quarantine_counter=quarantine_counter,
        )
        self._max_gap_s = max_gap_s

    def quarantine(self, conn: psycopg.Connection[Any], error: BaseException) -> int:
        return isolate_poison(conn, max_gap_s=self._max_gap_s)

    def run_round(self, conn: psycopg.Connection[Any]) -> None:
        # Drain the queue, but hand back within about one interval during a
        # burst, when new invalidations arrive as fast as they are consumed:
        # the share cap then spaces the rounds out.
        started = time.monotonic()
        while time.monotonic() - started < self._interval_s:
            result = refresh(conn, max_gap_s=self._max_gap_s, batch=ROUND_INVALIDATIONS)
            if result.quarantined:
                self.count_quarantined(result.quarantined)
            if result.skipped or result.invalidations < ROUND_INVALIDATIONS:
                return
