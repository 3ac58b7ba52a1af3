"""The raw-scan oracle: metric totals computed straight from ``events`` (the definitions of
docs/metrics.md in SQL), for tests and benchmarks to compare the engine (``api.metrics.engine``)
against. Not production code: nothing under api/ imports it.

Each function takes the engine's labelled windows and returns what the engine's
function of the same name returns, from a scan of the windows' events
(looking back by the longest stored duration for states reaching into them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from api.metrics.engine import Labelled, ModelTotals, StationTotals, WorkerTotals
from api.metrics.intervals import union_seconds
from takt.store.rollups import lookback_s

_W = "unnest(%(labels)s::int[], %(starts)s::timestamptz[], %(ends)s::timestamptz[]) AS w(label, a, b)"
_EDGE = "e.ts < w.b AND e.ts >= w.a - %(lookback)s * interval '1 second'"
_EFF_END = "e.ts + coalesce(e.effective_duration_s, 0) * interval '1 second'"
_CLIPPED = f"greatest(0, extract(epoch FROM least({_EFF_END}, w.b) - greatest(e.ts, w.a)))::double precision"


def _arrays(windows: Sequence[Labelled]) -> dict[str, Any]:
    return {
        "labels": [w[0] for w in windows],
        "starts": [w[1] for w in windows],
        "ends": [w[2] for w in windows],
    }


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
) -> dict[tuple[int, str], WorkerTotals]:
    """Per (label, worker), as :func:`api.metrics.engine.worker_totals`."""
    out: dict[tuple[int, str], WorkerTotals] = defaultdict(WorkerTotals)
    _raw_worker_totals(conn, windows, out, site_id=site_id, worker_id=worker_id)
    return dict(out)


def station_totals(
    conn: psycopg.Connection[Any],
    windows: Sequence[Labelled],
    *,
    site_id: str | None = None,
    station_id: str | None = None,
) -> dict[tuple[int, str], StationTotals]:
    """Per (label, station), as :func:`api.metrics.engine.station_totals`."""
    out: dict[tuple[int, str], StationTotals] = defaultdict(StationTotals)
    _raw_station_totals(conn, windows, out, site_id=site_id, station_id=station_id)
    return dict(out)


def model_totals(
    conn: psycopg.Connection[Any], windows: Sequence[Labelled], *, site_id: str | None = None
) -> dict[tuple[int, str, bool], ModelTotals]:
    """Per (label, model version, shadow), as :func:`api.metrics.engine.model_totals`."""
    out: dict[tuple[int, str, bool], ModelTotals] = defaultdict(ModelTotals)
    params = {**_arrays(windows), "lookback": lookback_s(conn)}
    where = _filters(params, "e", site_id=site_id)
    rows = conn.execute(
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
    for label, model, shadow, *sums in rows:
        out[(label, model, bool(shadow))].add(*sums)
    return {k: v for k, v in out.items() if v.events or v.working_s or v.idle_s or v.absent_s}


def _raw_worker_totals(
    conn: psycopg.Connection[Any],
    windows: Sequence[Labelled],
    out: dict[tuple[int, str], WorkerTotals],
    *,
    site_id: str | None,
    worker_id: str | None,
) -> None:
    params = {**_arrays(windows), "lookback": lookback_s(conn)}
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


def _raw_station_totals(
    conn: psycopg.Connection[Any],
    windows: Sequence[Labelled],
    out: dict[tuple[int, str], StationTotals],
    *,
    site_id: str | None,
    station_id: str | None,
) -> None:
    params = {**_arrays(windows), "lookback": lookback_s(conn)}
    where = _filters(params, "e", site_id=site_id, station_id=station_id)
    rows = conn.execute(
        f"SELECT w.label, e.station_id, e.event_type, greatest(e.ts, w.a), least({_EFF_END}, w.b), "
        f"CASE WHEN e.ts >= w.a THEN e.count ELSE 0 END, e.ts >= w.a, w.a "
        f"FROM {_W} CROSS JOIN LATERAL (SELECT * FROM events e WHERE {_EDGE} "
        f"AND NOT e.shadow {where} OFFSET 0) e",
        params,
    ).fetchall()
    # Unions are taken per window: windows never overlap, so their union seconds add up.
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


def cycle_times(
    conn: psycopg.Connection[Any],
    windows: Sequence[Labelled],
    *,
    station_id: str,
    site_id: str | None = None,
) -> tuple[int, float | None, float | None]:
    """:func:`api.metrics.engine.cycle_times` straight from events (the definition)."""
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


def unit_totals(
    conn: psycopg.Connection[Any],
    windows: Sequence[Labelled],
    *,
    site_id: str | None = None,
    station_id: str | None = None,
) -> dict[tuple[int, str, str], tuple[int, int, int, int]]:
    """Per (label, station, SKU): (units, rejected, reported, events), as
    :func:`api.metrics.units.unit_totals`, straight from the production product_count events."""
    params = _arrays(windows)
    where = _filters(params, "e", site_id=site_id, station_id=station_id)
    rows = conn.execute(
        f"SELECT w.label, e.station_id, coalesce(e.sku, ''), sum(e.count), sum(coalesce(e.rejected, 0)), "
        f"coalesce(sum(e.count) FILTER (WHERE e.rejected IS NOT NULL), 0), count(*) "
        f"FROM {_W} JOIN events e ON e.ts >= w.a AND e.ts < w.b "
        f"WHERE e.event_type = 'product_count' AND NOT e.shadow {where} GROUP BY 1, 2, 3",
        params,
    ).fetchall()
    return {(label, st, sku): (int(u), int(r), int(rep), int(n)) for label, st, sku, u, r, rep, n in rows}
