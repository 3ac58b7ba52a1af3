"""Metric totals over sets of time windows: hourly rollups for whole hours, raw events for the rest.

Each query takes labelled windows ``(label, start, end)``; totals come back per
label, so one query serves a plain window, a shift (many windows, one label)
and a time series (one label per bucket). Whole hours inside a window read the
rollup tables; the partial hours at its edges are computed from raw events with
the same clipping, so both paths give the same numbers (tests check this).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from api.metrics.intervals import union_seconds
from collector.rollups import HOUR, ceil_day, ceil_hour, floor_day, floor_hour

Labelled = tuple[int, datetime, datetime]


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


@dataclass(slots=True)
class Split:
    cores: list[Labelled] = field(default_factory=list)
    edges: list[Labelled] = field(default_factory=list)
    days: list[Labelled] = field(default_factory=list)


def split(windows: Sequence[Labelled], *, use_days: bool = False) -> Split:
    """Whole days (optional), whole hours (for rollups) and the partial hours at each window's edges."""
    out = Split()
    for label, lo, hi in windows:
        c0, c1 = ceil_hour(lo), floor_hour(hi)
        if c0 >= c1:
            out.edges.append((label, lo, hi))
            continue
        d0, d1 = ceil_day(c0), floor_day(c1)
        if use_days and d0 < d1:
            out.days.append((label, d0, d1))
            out.cores += [(label, a, b) for a, b in ((c0, d0), (d1, c1)) if a < b]
        else:
            out.cores.append((label, c0, c1))
        if lo < c0:
            out.edges.append((label, lo, c0))
        if c1 < hi:
            out.edges.append((label, c1, hi))
    return out


def _arrays(windows: Sequence[Labelled]) -> dict[str, Any]:
    return {
        "labels": [w[0] for w in windows],
        "starts": [w[1] for w in windows],
        "ends": [w[2] for w in windows],
    }


_W = "unnest(%(labels)s::int[], %(starts)s::timestamptz[], %(ends)s::timestamptz[]) AS w(label, a, b)"
# Per window (LATERAL ... OFFSET 0, a planner fence) so each window is one index
# range scan; flattened, the planner hash-joins a sequential scan of events.
_EDGE = "e.ts < w.b AND e.ts >= w.a - %(lookback)s * interval '1 second'"
_EFF_END = "e.ts + coalesce(e.effective_duration_s, 0) * interval '1 second'"
_CLIPPED = f"greatest(0, extract(epoch FROM least({_EFF_END}, w.b) - greatest(e.ts, w.a)))::double precision"


def lookback_s(conn: psycopg.Connection[Any]) -> float:
    row = conn.execute("SELECT max_duration_s FROM rollup_meta WHERE id = 1").fetchone()
    return float(row[0]) if row else 0.0


def _filters(params: dict[str, Any], alias: str, **values: str | None) -> str:
    sql = ""
    for column, value in values.items():
        if value is None:
            continue
        params[column] = value
        # Rollups store a missing site as ''; raw events store NULL.
        target = f"coalesce({alias}.{column}, '')" if column == "site_id" else f"{alias}.{column}"
        sql += f" AND {target} = %({column})s"
    return sql


def worker_totals(
    conn: psycopg.Connection[Any],
    windows: Sequence[Labelled],
    *,
    site_id: str | None = None,
    worker_id: str | None = None,
    raw: bool = False,
) -> dict[tuple[int, str], WorkerTotals]:
    parts = Split(edges=list(windows)) if raw else split(windows, use_days=True)
    out: dict[tuple[int, str], WorkerTotals] = defaultdict(WorkerTotals)
    for table, cores in (("rollup_worker_day", parts.days), ("rollup_worker_hour", parts.cores)):
        if not cores:
            continue
        params = _arrays(cores)
        where = _filters(params, "r", site_id=site_id, worker_id=worker_id)
        rows = conn.execute(
            f"SELECT w.label, r.worker_id, sum(working_s), sum(idle_s), sum(absent_s), sum(units), "
            f"sum(events) "
            f"FROM {_W} CROSS JOIN LATERAL (SELECT * FROM {table} r "
            f"WHERE r.bucket >= w.a AND r.bucket < w.b {where} OFFSET 0) r GROUP BY 1, 2",
            params,
        ).fetchall()
        for label, worker, *sums in rows:
            out[(label, worker)].add(*sums)
    if parts.edges:
        params = {**_arrays(parts.edges), "lookback": lookback_s(conn)}
        where = _filters(params, "e", site_id=site_id, worker_id=worker_id)
        rows = conn.execute(
            f"SELECT w.label, e.worker_id, "
            f"coalesce(sum({_CLIPPED}) FILTER (WHERE e.event_type = 'working'), 0), "
            f"coalesce(sum({_CLIPPED}) FILTER (WHERE e.event_type = 'idle'), 0), "
            f"coalesce(sum({_CLIPPED}) FILTER (WHERE e.event_type = 'absent'), 0), "
            f"coalesce(sum(e.count) FILTER (WHERE e.event_type = 'product_count' AND e.ts >= w.a), 0), "
            f"count(*) FILTER (WHERE e.ts >= w.a) "
            f"FROM {_W} CROSS JOIN LATERAL (SELECT * FROM events e WHERE {_EDGE} "
            f"AND NOT e.shadow {where} OFFSET 0) e GROUP BY 1, 2",
            params,
        ).fetchall()
        for label, worker, *sums in rows:
            out[(label, worker)].add(*sums)
    return dict(out)


def station_totals(
    conn: psycopg.Connection[Any],
    windows: Sequence[Labelled],
    *,
    site_id: str | None = None,
    station_id: str | None = None,
    raw: bool = False,
) -> dict[tuple[int, str], StationTotals]:
    parts = Split(edges=list(windows)) if raw else split(windows, use_days=True)
    out: dict[tuple[int, str], StationTotals] = defaultdict(StationTotals)
    for table, cores in (("rollup_station_day", parts.days), ("rollup_station_hour", parts.cores)):
        if not cores:
            continue
        params = _arrays(cores)
        where = _filters(params, "r", site_id=site_id, station_id=station_id)
        rows = conn.execute(
            f"SELECT w.label, r.station_id, sum(occupied_s), sum(working_s), sum(observed_s), sum(units), "
            f"sum(events) FROM {_W} CROSS JOIN LATERAL (SELECT * FROM {table} r "
            f"WHERE r.bucket >= w.a AND r.bucket < w.b {where} OFFSET 0) r GROUP BY 1, 2",
            params,
        ).fetchall()
        for label, station, *sums in rows:
            out[(label, station)].add(*sums)
    if parts.edges:
        params = {**_arrays(parts.edges), "lookback": lookback_s(conn)}
        where = _filters(params, "e", site_id=site_id, station_id=station_id)
        rows = conn.execute(
            f"SELECT w.label, e.station_id, e.event_type, greatest(e.ts, w.a), least({_EFF_END}, w.b), "
            f"CASE WHEN e.ts >= w.a THEN e.count ELSE 0 END, e.ts >= w.a, w.a "
            f"FROM {_W} CROSS JOIN LATERAL (SELECT * FROM events e WHERE {_EDGE} "
            f"AND NOT e.shadow {where} OFFSET 0) e",
            params,
        ).fetchall()
        # Unions are taken per edge window: edges never overlap each other or
        # the whole hours, so their union seconds add up.
        spans: dict[tuple[int, str, datetime], dict[str, list[tuple[datetime, datetime]]]] = defaultdict(
            lambda: {"occupied": [], "working": [], "observed": []}
        )
        for label, station, etype, s, e, count, inside, edge in rows:
            t = out[(label, station)]
            if inside:
                t.events += 1
                if etype == "product_count":
                    t.units += int(count)
            if etype != "product_count" and e > s:
                kinds = spans[(label, station, edge)]
                kinds["observed"].append((s, e))
                if etype in ("working", "idle"):
                    kinds["occupied"].append((s, e))
                if etype == "working":
                    kinds["working"].append((s, e))
        for (label, station, _), kinds in spans.items():
            out[(label, station)].add(
                union_seconds(kinds["occupied"]),
                union_seconds(kinds["working"]),
                union_seconds(kinds["observed"]),
                0,
                0,
            )
    return dict(out)


def model_totals(
    conn: psycopg.Connection[Any], windows: Sequence[Labelled], *, site_id: str | None = None
) -> dict[tuple[int, str, bool], ModelTotals]:
    parts = split(windows)
    out: dict[tuple[int, str, bool], ModelTotals] = defaultdict(ModelTotals)
    rows: list[tuple[Any, ...]] = []
    if parts.cores:
        params = _arrays(parts.cores)
        where = _filters(params, "r", site_id=site_id)
        rows += conn.execute(
            f"SELECT w.label, r.model_version, r.shadow, "
            f"coalesce(sum(seconds) FILTER (WHERE event_type = 'working'), 0), "
            f"coalesce(sum(seconds) FILTER (WHERE event_type = 'idle'), 0), "
            f"coalesce(sum(seconds) FILTER (WHERE event_type = 'absent'), 0), "
            f"sum(units), sum(events), sum(conf_sum) "
            f"FROM {_W} CROSS JOIN LATERAL (SELECT * FROM rollup_hour r "
            f"WHERE r.bucket >= w.a AND r.bucket < w.b {where} OFFSET 0) r GROUP BY 1, 2, 3",
            params,
        ).fetchall()
    if parts.edges:
        params = {**_arrays(parts.edges), "lookback": lookback_s(conn)}
        where = _filters(params, "e", site_id=site_id)
        rows += conn.execute(
            f"SELECT w.label, coalesce(e.model_version, ''), e.shadow, "
            f"coalesce(sum({_CLIPPED}) FILTER (WHERE e.event_type = 'working'), 0), "
            f"coalesce(sum({_CLIPPED}) FILTER (WHERE e.event_type = 'idle'), 0), "
            f"coalesce(sum({_CLIPPED}) FILTER (WHERE e.event_type = 'absent'), 0), "
            f"coalesce(sum(e.count) FILTER (WHERE e.event_type = 'product_count' AND e.ts >= w.a), 0), "
            f"count(*) FILTER (WHERE e.ts >= w.a), "
            f"coalesce(sum(e.confidence) FILTER (WHERE e.ts >= w.a), 0) "
            f"FROM {_W} CROSS JOIN LATERAL (SELECT * FROM events e WHERE {_EDGE} {where} OFFSET 0) e "
            f"GROUP BY 1, 2, 3",
            params,
        ).fetchall()
    for label, model, shadow, working, idle, absent, units, events, conf in rows:
        t = out[(label, model, bool(shadow))]
        t.working_s += working
        t.idle_s += idle
        t.absent_s += absent
        t.units += int(units)
        t.events += int(events)
        t.conf_sum += float(conf)
    return {k: v for k, v in out.items() if v.events or v.working_s or v.idle_s or v.absent_s}


def cycle_times(
    conn: psycopg.Connection[Any],
    windows: Sequence[Labelled],
    *,
    station_id: str,
    site_id: str | None = None,
) -> tuple[int, float | None, float | None]:
    """(gaps, median s, p90 s) between consecutive unit events at a station, within each window."""
    params = _arrays(windows)
    where = _filters(params, "e", site_id=site_id, station_id=station_id)
    row = conn.execute(
        f"SELECT count(gap), percentile_cont(0.5) WITHIN GROUP (ORDER BY gap), "
        f"percentile_cont(0.9) WITHIN GROUP (ORDER BY gap) FROM ("
        f"  SELECT extract(epoch FROM e.ts - lag(e.ts) "
        f"         OVER (PARTITION BY w.label, w.a ORDER BY e.ts, e.event_id))"
        f"         ::double precision AS gap "
        f"  FROM {_W} CROSS JOIN LATERAL (SELECT * FROM events e WHERE e.ts >= w.a AND e.ts < w.b "
        f"  AND NOT e.shadow AND e.event_type = 'product_count' AND e.count > 0 {where} OFFSET 0) e) g",
        params,
    ).fetchone()
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


__all__ = ["HOUR", "Labelled", "bucket_windows", "model_totals", "station_totals", "worker_totals"]
