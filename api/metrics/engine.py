"""Metric totals over sets of time windows, from rollups plus the not yet rolled-up tail.

Each query takes labelled windows ``(label, start, end)``; totals come back per
label, so one query serves a plain window, a shift (many windows, one label)
and a time series (one label per bucket). A window is split into whole UTC days
(day rollups), whole hours (hour rollups) and at most two parts of an hour at
its edges; those are summed from the hour's detail rows (its state pieces or a
station's union islands, and its events, as microsecond offsets), clipped to
the part exactly as the raw computation clips to the window. Every path gives
the raw computation's numbers: tests and benchmarks compare against the
raw-scan oracle, ``tests/oracle.py``, which computes them from events.

Read-your-writes: what the refresher has not consumed yet (the pending
invalidations) is computed from events at query time and applied as signed
corrections (``api.metrics.live``), all in one REPEATABLE READ snapshot
(:func:`snapshot`), so an answer includes everything committed before it began.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from api.metrics.live import Element, Tail, clipped, load_tail, parts
from takt.store import codes
from takt.store.rollups import DAY, HOUR, ORIGIN, ceil_day, ceil_hour, floor_day, floor_hour

Labelled = tuple[int, datetime, datetime]
# (label, hour, from, to): the part [hour + from, hour + to) of one hour, offsets in microseconds.
Part = tuple[int, datetime, int, int]
MICROSECOND = timedelta(microseconds=1)
HOUR_US = HOUR // MICROSECOND
# TAKT_MAX_STATE_GAP_S's default; the API passes its setting.
DEFAULT_GAP_S = 600.0


# The tails of each snapshot that :func:`snapshot` holds open, per connection and gap: every engine
# call inside it (an endpoint's worker, station and model totals) reuses the one computed first.
# An entry lives exactly as long as its transaction, so no tail outlives the snapshot it was read in.
_snapshot_tails: dict[int, dict[float, Tail]] = {}


@contextmanager
def snapshot(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """One REPEATABLE READ, READ ONLY transaction for the pending tail and the rollups together, so
    an invalidation committed meanwhile is either seen with its events or not at all (and the rows
    the refresher consumes meanwhile stay visible as they were). Inside a caller's transaction its
    snapshot is used as it is.

    Within the transaction this opens, the tail is loaded at most once (per gap): an endpoint that
    wraps its several engine calls in one ``snapshot`` computes it once. Inside a caller's own
    transaction nothing is kept (its reads may see its own writes between two calls)."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        yield
        return
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        _snapshot_tails[id(conn)] = {}
        try:
            yield
        finally:
            del _snapshot_tails[id(conn)]


def _tail(conn: psycopg.Connection[Any], live: bool, gap_s: float) -> Tail:
    """The pending tail in the current snapshot: the snapshot's own (see :func:`snapshot`), or
    loaded now in a caller's transaction."""
    if not live:
        return Tail()
    memo = _snapshot_tails.get(id(conn))
    if memo is None:
        return load_tail(conn, gap_s)
    tail = memo.get(gap_s)
    if tail is None:
        tail = memo[gap_s] = load_tail(conn, gap_s)
    return tail


def _tidy(value: float) -> float:
    """A corrected sum: subtracting stored seconds and adding them back leaves float noise."""
    return 0.0 if abs(value) < 1e-7 else value


@dataclass(slots=True)
class WorkerTotals:
    working_s: float = 0.0
    idle_s: float = 0.0
    absent_s: float = 0.0
    units: int = 0
    events: int = 0

    def add(self, working: float, idle: float, absent: float, units: int, events: int) -> None:
        self.working_s += working
        self.idle_s += idle
        self.absent_s += absent
        self.units += int(units)
        self.events += int(events)


@dataclass(slots=True)
class StationTotals:
    occupied_s: float = 0.0
    working_s: float = 0.0
    observed_s: float = 0.0
    units: int = 0
    events: int = 0

    def add(self, occupied: float, working: float, observed: float, units: int, events: int) -> None:
        self.occupied_s += occupied
        self.working_s += working
        self.observed_s += observed
        self.units += int(units)
        self.events += int(events)


@dataclass(slots=True)
class ModelTotals:
    working_s: float = 0.0
    idle_s: float = 0.0
    absent_s: float = 0.0
    units: int = 0
    events: int = 0
    conf_sum: float = 0.0

    def add(self, working: float, idle: float, absent: float, units: int, events: int, conf: float) -> None:
        self.working_s += working
        self.idle_s += idle
        self.absent_s += absent
        self.units += int(units)
        self.events += int(events)
        self.conf_sum += float(conf)


# (label, start, end, sign): whole days or hours added (+1) or subtracted (-1).
Signed = tuple[int, datetime, datetime, int]


@dataclass(slots=True)
class Split:
    days: list[Signed] = field(default_factory=list)
    hours: list[Signed] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)


def _part(label: int, lo: datetime, hi: datetime) -> Part:
    hour = floor_hour(lo)
    return (label, hour, (lo - hour) // MICROSECOND, (hi - hour) // MICROSECOND)


def _whole_hours(out: Split, label: int, c0: datetime, c1: datetime) -> None:
    """[c0, c1) (whole hours) as whole UTC days and hours, reading as few rows as possible.

    Totals are additive over disjoint time (union seconds too), so the hours of
    a day outside the window can be subtracted from the day's row: 13 hours or
    more of a day read as the day minus the rest. A local-time day (23:00 to
    23:00 UTC) is one day row and two hour rows instead of 24 hour rows.
    """
    first, last = floor_day(c0), floor_day(c1 - HOUR)
    if first == last:
        if (c1 - c0) // HOUR > 12:
            out.days.append((label, first, first + DAY, 1))
            out.hours += [(label, a, b, -1) for a, b in ((first, c0), (c1, first + DAY)) if a < b]
        else:
            out.hours.append((label, c0, c1, 1))
        return
    lo, hi = ceil_day(c0), floor_day(c1)
    if c0 < lo:
        if (lo - c0) // HOUR > 12:
            out.hours.append((label, first, c0, -1))
            lo = first
        else:
            out.hours.append((label, c0, lo, 1))
    if hi < c1:
        if (c1 - hi) // HOUR > 12:
            out.hours.append((label, c1, hi + DAY, -1))
            hi += DAY
        else:
            out.hours.append((label, hi, c1, 1))
    if lo < hi:
        out.days.append((label, lo, hi, 1))


def split(windows: Sequence[Labelled], *, use_days: bool = True) -> Split:
    """Whole UTC days (optional), whole hours, and the parts of an hour at each window's edges."""
    out = Split()
    for label, lo, hi in windows:
        if lo >= hi:
            continue
        c0, c1 = ceil_hour(lo), floor_hour(hi)
        if c0 > c1:  # inside one hour
            out.parts.append(_part(label, lo, hi))
            continue
        if lo < c0:
            out.parts.append(_part(label, lo, c0))
        if c1 < hi:
            out.parts.append(_part(label, c1, hi))
        if c0 == c1:
            continue
        if use_days:
            _whole_hours(out, label, c0, c1)
        else:
            out.hours.append((label, c0, c1, 1))
    return out


def _arrays(windows: Sequence[Labelled], prefix: str = "") -> dict[str, Any]:
    return {
        f"{prefix}labels": [w[0] for w in windows],
        f"{prefix}starts": [w[1] for w in windows],
        f"{prefix}ends": [w[2] for w in windows],
    }


def _signed_arrays(spans: Sequence[Signed], prefix: str) -> dict[str, Any]:
    return {
        **_arrays([(label, a, b) for label, a, b, _ in spans], prefix),
        f"{prefix}signs": [sign for *_, sign in spans],
    }


def _split_arrays(parts: Split) -> dict[str, Any]:
    return {
        **_signed_arrays(parts.days, "d_"),
        **_signed_arrays(parts.hours, "h_"),
        "p_labels": [p[0] for p in parts.parts],
        "p_buckets": [p[1] for p in parts.parts],
        "p_froms": [p[2] for p in parts.parts],
        "p_tos": [p[3] for p in parts.parts],
    }


_W = "unnest(%(labels)s::int[], %(starts)s::timestamptz[], %(ends)s::timestamptz[]) AS w(label, a, b)"


def _rollup_rows(prefix: str, table: str) -> str:
    # Per window (LATERAL ... OFFSET 0, a planner fence) so each window is one
    # index range scan; flattened, the planner may hash-join a sequential scan.
    return (
        f"unnest(%({prefix}labels)s::int[], %({prefix}starts)s::timestamptz[], "
        f"%({prefix}ends)s::timestamptz[], %({prefix}signs)s::int[]) AS w(label, a, b, sign) "
        f"CROSS JOIN LATERAL (SELECT * FROM {table} r "
        f"WHERE r.bucket >= w.a AND r.bucket < w.b {{where_r}} OFFSET 0) r"
    )


def _signed(*columns: str) -> str:
    """Rollup columns times the span's sign, named as the union's columns (``working_s`` → working)."""
    return ", ".join(f"r.{c} * w.sign AS {c.removesuffix('_s').removesuffix('_sum')}" for c in columns)


def _nonnegative(*columns: str) -> str:
    """Sums that subtracted hours may leave a rounding error below zero (never a real amount)."""
    return ", ".join(f"greatest(sum({c}), 0)" for c in columns)


_PARTS = (
    "unnest(%(p_labels)s::int[], %(p_buckets)s::timestamptz[], %(p_froms)s::bigint[], %(p_tos)s::bigint[]) "
    "AS p(label, bucket, a, b)"
)


def _seconds(kind: str) -> str:
    """Seconds of ``kind`` pieces x(k, f, t) inside the part [p.a, p.b) (offsets in microseconds)."""
    return (
        f"coalesce(sum(greatest(least(x.t, p.b) - greatest(x.f, p.a), 0)) FILTER (WHERE x.k = '{kind}'), 0)"
        f"::double precision / 1e6"
    )


# Offsets are sorted: width_bucket(x, offsets) is the number of offsets <= x
# (a binary search), so [p.a, p.b) holds offsets number i + 1 .. j.
def _count_in(at: str) -> str:
    return f"(width_bucket(p.b - 1, {at}) - width_bucket(p.a - 1, {at}))"


_EVENTS_IN = _count_in("d.event_at")
_UNITS_IN = (
    "(SELECT coalesce(sum(n), 0) FROM unnest(d.unit_count[width_bucket(p.a - 1, d.unit_at) + 1 "
    ": width_bucket(p.b - 1, d.unit_at)]) AS n)"
)

# One statement per figure family: whole days, whole hours and the parts of
# hours (from the detail rows, clipped to the part) are summed in SQL per
# label and key, so Python gets one finished row per key.
_WORKER_TOTALS = f"""
SELECT label, worker_id, {_nonnegative("working", "idle", "absent")}, sum(units)::bigint, sum(events)::bigint
FROM (
    SELECT w.label, r.worker_id, {_signed("working_s", "idle_s", "absent_s", "units", "events")}
    FROM {_rollup_rows("d_", "rollup_worker_day")}
    UNION ALL
    SELECT w.label, r.worker_id, {_signed("working_s", "idle_s", "absent_s", "units", "events")}
    FROM {_rollup_rows("h_", "rollup_worker_hour")}
    UNION ALL
    SELECT p.label, d.worker_id, x.working, x.idle, x.absent, {_UNITS_IN}, {_EVENTS_IN}
    FROM {_PARTS} JOIN rollup_worker_detail d ON d.bucket = p.bucket AND NOT d.shadow {{where_d}}
    CROSS JOIN LATERAL (
        SELECT {_seconds(codes.WORKING)} AS working, {_seconds(codes.IDLE)} AS idle,
               {_seconds(codes.ABSENT)} AS absent
        FROM unnest(d.state_kind, d.state_from, d.state_to) AS x(k, f, t)
    ) x
) t
GROUP BY label, worker_id
"""

# Union seconds of disjoint parts of time add up, so a station's islands
# clipped to each part sum with its whole hours and days.
_STATION_TOTALS = f"""
SELECT label, station_id, {_nonnegative("occupied", "working", "observed")}, sum(units)::bigint,
       sum(events)::bigint
FROM (
    SELECT w.label, r.station_id, {_signed("occupied_s", "working_s", "observed_s", "units", "events")}
    FROM {_rollup_rows("d_", "rollup_station_day")}
    UNION ALL
    SELECT w.label, r.station_id, {_signed("occupied_s", "working_s", "observed_s", "units", "events")}
    FROM {_rollup_rows("h_", "rollup_station_hour")}
    UNION ALL
    SELECT p.label, d.station_id, x.occupied, x.working, x.observed, {_UNITS_IN}, {_EVENTS_IN}
    FROM {_PARTS} JOIN rollup_station_detail d ON d.bucket = p.bucket {{where_d}}
    CROSS JOIN LATERAL (
        SELECT {_seconds(codes.OCCUPIED)} AS occupied, {_seconds(codes.WORKING_ISLAND)} AS working,
               {_seconds(codes.OBSERVED)} AS observed
        FROM unnest(d.island_kind, d.island_from, d.island_to) AS x(k, f, t)
    ) x
) t
GROUP BY label, station_id
"""

_MODEL_TOTALS = f"""
SELECT label, model_version, shadow, {_nonnegative("working", "idle", "absent")}, sum(units)::bigint,
       sum(events)::bigint, {_nonnegative("conf")}
FROM (
    SELECT w.label, r.model_version, r.shadow,
           {_signed("working_s", "idle_s", "absent_s", "units", "events", "conf_sum")}
    FROM {_rollup_rows("d_", "rollup_model_day")}
    UNION ALL
    SELECT w.label, r.model_version, r.shadow,
           {_signed("working_s", "idle_s", "absent_s", "units", "events", "conf_sum")}
    FROM {_rollup_rows("h_", "rollup_model_hour")}
    UNION ALL
    SELECT p.label, d.model_version, d.shadow, x.working, x.idle, x.absent, {_UNITS_IN}, y.events, y.conf
    FROM {_PARTS} JOIN rollup_worker_detail d ON d.bucket = p.bucket {{where_d}}
    CROSS JOIN LATERAL (
        SELECT {_seconds(codes.WORKING)} AS working, {_seconds(codes.IDLE)} AS idle,
               {_seconds(codes.ABSENT)} AS absent
        FROM unnest(d.state_kind, d.state_from, d.state_to) AS x(k, f, t)
    ) x
    CROSS JOIN LATERAL (
        SELECT {_EVENTS_IN} AS events, (
            SELECT coalesce(sum(c), 0) FROM unnest(d.event_conf[width_bucket(p.a - 1, d.event_at) + 1
                                                               : width_bucket(p.b - 1, d.event_at)]) AS c
        ) AS conf
    ) y
) t
GROUP BY label, model_version, shadow
"""


def _rollup_query(
    sql: str, windows: Sequence[Labelled], **filters: str | frozenset[str] | None
) -> tuple[str, dict[str, Any]]:
    params = _split_arrays(split(windows))
    where_r = _filters(params, "r", **filters)
    where_d = _filters(params, "d", **filters)
    return sql.format(where_r=where_r, where_d=where_d), params


# A site filter: one site, a set of sites (a site-scoped token's, api.access), or None for all.
SiteFilter = str | frozenset[str] | None


def site_matches(site: str, wanted: SiteFilter) -> bool:
    """Whether a stored site ('' for none) passes the filter; the pending tail's filter."""
    if wanted is None:
        return True
    return site == wanted if isinstance(wanted, str) else site in wanted


def site_list(wanted: SiteFilter) -> list[str] | None:
    """The filter as a bound parameter for ``%(s)s::text[] IS NULL OR site_id = ANY(%(s)s)``."""
    if wanted is None:
        return None
    return [wanted] if isinstance(wanted, str) else sorted(wanted)


def _filters(params: dict[str, Any], alias: str, **values: str | frozenset[str] | None) -> str:
    sql = ""
    for column, value in values.items():
        if value is None:
            continue
        # Rollups store a missing site as ''; raw events store NULL.
        target = f"coalesce({alias}.{column}, '')" if column == "site_id" else f"{alias}.{column}"
        if isinstance(value, frozenset):
            params[column] = sorted(value)
            sql += f" AND {target} = ANY(%({column})s::text[])"
        else:
            params[column] = value
            sql += f" AND {target} = %({column})s"
    return sql


def _apply_piece(t: WorkerTotals | ModelTotals, e: Element, a: int, z: int) -> bool:
    """Adds one signed tail element's share of the part [a, z) (µs) to ``t``; True for a counted event."""
    if e.kind in codes.STATE_NAME:
        seconds = e.sign * clipped(e.f, e.t, a, z)
        if e.kind == codes.WORKING:
            t.working_s += seconds
        elif e.kind == codes.IDLE:
            t.idle_s += seconds
        else:
            t.absent_s += seconds
    elif a <= e.f < z:
        if e.kind == codes.EVENT:
            t.events += e.sign
            return True
        t.units += e.sign * e.n
    return False


def worker_totals(
    conn: psycopg.Connection[Any],
    windows: Sequence[Labelled],
    *,
    site_id: SiteFilter = None,
    worker_id: str | None = None,
    live: bool = True,
    gap_s: float = DEFAULT_GAP_S,
) -> dict[tuple[int, str], WorkerTotals]:
    """Per (label, worker): rollups plus the pending tail (``live=False``: rollups only)."""
    sql, params = _rollup_query(_WORKER_TOTALS, windows, site_id=site_id, worker_id=worker_id)
    with snapshot(conn):
        tail = _tail(conn, live, gap_s)
        rows = conn.execute(sql, params).fetchall()
    totals = {(label, worker): WorkerTotals(*sums) for label, worker, *sums in rows}
    if tail.empty:
        return totals
    by_hour = parts(tail, windows)
    for e in tail.worker:
        if e.shadow or not site_matches(e.site, site_id) or (worker_id not in (None, e.worker)):
            continue
        for label, a, z in by_hour.get(e.bucket, ()):
            _apply_piece(totals.setdefault((label, e.worker), WorkerTotals()), e, a, z)
    for t in totals.values():
        t.working_s, t.idle_s, t.absent_s = _tidy(t.working_s), _tidy(t.idle_s), _tidy(t.absent_s)
    return totals


def station_totals(
    conn: psycopg.Connection[Any],
    windows: Sequence[Labelled],
    *,
    site_id: SiteFilter = None,
    station_id: str | None = None,
    live: bool = True,
    gap_s: float = DEFAULT_GAP_S,
) -> dict[tuple[int, str], StationTotals]:
    """Per (label, station): rollups plus the pending tail (``live=False``: rollups only)."""
    sql, params = _rollup_query(_STATION_TOTALS, windows, site_id=site_id, station_id=station_id)
    with snapshot(conn):
        tail = _tail(conn, live, gap_s)
        rows = conn.execute(sql, params).fetchall()
    totals = {(label, station): StationTotals(*sums) for label, station, *sums in rows}
    if tail.empty:
        return totals
    by_hour = parts(tail, windows)
    for e in tail.station:
        if not site_matches(e.site, site_id) or (station_id not in (None, e.station)):
            continue
        for label, a, z in by_hour.get(e.bucket, ()):
            t = totals.setdefault((label, e.station), StationTotals())
            if e.kind == codes.EVENT:
                t.events += e.sign if a <= e.f < z else 0
            elif e.kind == codes.UNITS:
                t.units += e.sign * e.n if a <= e.f < z else 0
            else:
                seconds = e.sign * clipped(e.f, e.t, a, z)
                if e.kind == codes.OCCUPIED:
                    t.occupied_s += seconds
                elif e.kind == codes.WORKING_ISLAND:
                    t.working_s += seconds
                else:
                    t.observed_s += seconds
    for t in totals.values():
        t.occupied_s, t.working_s, t.observed_s = _tidy(t.occupied_s), _tidy(t.working_s), _tidy(t.observed_s)
    return totals


def model_totals(
    conn: psycopg.Connection[Any],
    windows: Sequence[Labelled],
    *,
    site_id: SiteFilter = None,
    live: bool = True,
    gap_s: float = DEFAULT_GAP_S,
) -> dict[tuple[int, str, bool], ModelTotals]:
    """Per (label, model version, shadow): rollups plus the pending tail."""
    out: dict[tuple[int, str, bool], ModelTotals] = defaultdict(ModelTotals)
    sql, params = _rollup_query(_MODEL_TOTALS, windows, site_id=site_id)
    with snapshot(conn):
        tail = _tail(conn, live, gap_s)
        rows = conn.execute(sql, params).fetchall()
    for label, model, shadow, *sums in rows:
        out[(label, model, bool(shadow))].add(*sums)
    if not tail.empty:
        by_hour = parts(tail, windows)
        for e in tail.worker:
            if not site_matches(e.site, site_id):
                continue
            for label, a, z in by_hour.get(e.bucket, ()):
                t = out[(label, e.model, e.shadow)]
                if _apply_piece(t, e, a, z):
                    t.conf_sum += e.sign * e.conf
        for t in out.values():
            t.working_s, t.idle_s, t.absent_s = _tidy(t.working_s), _tidy(t.idle_s), _tidy(t.absent_s)
            t.conf_sum = max(t.conf_sum, 0.0)
    return {k: v for k, v in out.items() if v.events or v.working_s or v.idle_s or v.absent_s}


# Unit events (count > 0) of one station in each window, from the station's
# detail rows (production events only), as microseconds since ORIGIN, so gaps
# are exact integers converted to seconds once, like the raw computation's.
# The offsets of an hour are already in order: gaps are differences of
# neighbours within an hour, plus one gap joining each hour to the previous
# hour with units; only the hours at a window's edges are filtered.
_CYCLES = f"""
WITH suffix AS (
    SELECT bucket, site_id, array_agg(at ORDER BY at) AS unit_at
    FROM unnest(%(u_buckets)s::timestamptz[], %(u_sites)s::text[], %(u_ats)s::bigint[])
         AS u(bucket, site_id, at)
    GROUP BY 1, 2
), live AS MATERIALIZED (
    -- The station-hours the pending tail touches: stored offsets before the cut (of every part of
    -- the hour, parts in time order), then the tail's.
    SELECT p.bucket, p.site_id,
           coalesce((SELECT array_agg(t ORDER BY d.part, t)
                     FROM rollup_station_detail d CROSS JOIN LATERAL unnest(d.unit_at) AS t
                     WHERE d.station_id = %(station_id)s AND d.bucket = p.bucket AND d.site_id = p.site_id
                       AND d.part < p.cut AND t < p.cut), '{{{{}}}}')
           || coalesce(x.unit_at, '{{{{}}}}') AS unit_at
    FROM unnest(%(l_buckets)s::timestamptz[], %(l_sites)s::text[], %(l_cuts)s::bigint[])
         AS p(bucket, site_id, cut)
    LEFT JOIN suffix x ON x.bucket = p.bucket AND x.site_id = p.site_id
), w AS (
    SELECT *, (extract(epoch FROM a - %(origin)s) * 1000000)::bigint AS lo,
              (extract(epoch FROM b - %(origin)s) * 1000000)::bigint AS hi
    FROM {_W}
), hours AS MATERIALIZED (
    SELECT w.label, w.a, d.base, d.part,
           CASE WHEN d.base >= w.lo AND d.base + {HOUR_US} <= w.hi THEN d.unit_at
                ELSE ARRAY(SELECT t FROM unnest(d.unit_at) AS t
                           WHERE d.base + t >= w.lo AND d.base + t < w.hi) END AS u
    FROM w CROSS JOIN LATERAL (
        SELECT (extract(epoch FROM d.bucket - %(origin)s) * 1000000)::bigint AS base, d.part, d.unit_at
        FROM (
            SELECT d.bucket, d.part, d.unit_at FROM rollup_station_detail d
            WHERE d.station_id = %(station_id)s AND d.bucket >= date_bin('1 hour', w.a, %(origin)s)
              AND d.bucket < w.b AND cardinality(d.unit_at) > 0 {{where}}
              AND NOT EXISTS (SELECT 1 FROM live l WHERE l.bucket = d.bucket AND l.site_id = d.site_id)
            UNION ALL
            SELECT l.bucket, 0, l.unit_at FROM live l
            WHERE l.bucket >= date_bin('1 hour', w.a, %(origin)s) AND l.bucket < w.b
              AND cardinality(l.unit_at) > 0
        ) d OFFSET 0
    ) d
), runs AS (
    SELECT u, u[1] + base - lag(u[cardinality(u)] + base) OVER (PARTITION BY label, a ORDER BY base, part)
           AS joint
    FROM hours WHERE cardinality(u) > 0
), gaps AS (
    SELECT joint AS gap FROM runs WHERE joint IS NOT NULL
    UNION ALL
    SELECT g.y - g.x FROM runs CROSS JOIN LATERAL unnest(u[1:cardinality(u) - 1], u[2:]) AS g(x, y)
)
SELECT count(gap), percentile_cont(0.5) WITHIN GROUP (ORDER BY gap::double precision / 1e6),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY gap::double precision / 1e6)
FROM gaps
"""


def cycle_times(
    conn: psycopg.Connection[Any],
    windows: Sequence[Labelled],
    *,
    station_id: str,
    site_id: SiteFilter = None,
    live: bool = True,
    gap_s: float = DEFAULT_GAP_S,
) -> tuple[int, float | None, float | None]:
    """(gaps, median s, p90 s) between consecutive unit events at a station, within each window."""
    params: dict[str, Any] = {**_arrays(windows), "station_id": station_id, "origin": ORIGIN}
    where = _filters(params, "d", site_id=site_id)
    with snapshot(conn):
        tail = _tail(conn, live, gap_s)
        pending = sorted(
            (key, value)
            for key, value in tail.units.items()
            if key[1] == station_id and site_matches(key[0], site_id)
        )
        params["l_buckets"] = [k[2] for k, _ in pending]
        params["l_sites"] = [k[0] for k, _ in pending]
        params["l_cuts"] = [cut for _, (cut, _units) in pending]
        params["u_buckets"] = [k[2] for k, (_, units) in pending for _u in units]
        params["u_sites"] = [k[0] for k, (_, units) in pending for _u in units]
        params["u_ats"] = [u for _, (_, units) in pending for u in units]
        row = conn.execute(_CYCLES.format(where=where), params).fetchone()
    if not row or not row[0]:
        return 0, None, None
    return int(row[0]), float(row[1]), float(row[2])


def bucket_windows(lo: datetime, hi: datetime, step: timedelta, origin: datetime) -> list[Labelled]:
    """One labelled window per bucket of ``step`` (aligned on ``origin``) clipped to [lo, hi)."""
    out: list[Labelled] = []
    start = origin + ((lo - origin) // step) * step
    i = 0
    while start < hi:
        out.append((i, max(start, lo), min(start + step, hi)))
        start += step
        i += 1
    return out


__all__ = [
    "HOUR",
    "HOUR_US",
    "Labelled",
    "SiteFilter",
    "bucket_windows",
    "cycle_times",
    "model_totals",
    "site_list",
    "site_matches",
    "station_totals",
    "worker_totals",
]
