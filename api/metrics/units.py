"""Units, rejects and SKUs per station over labelled windows: ``rollup_units_hour`` plus raw edges.

Units are point events, so a station-hour's rollup row (per SKU) depends on
that hour's ``product_count`` events only. A window is read as whole UTC days
(``rollup_units_day``) and hours (``rollup_units_hour``), signed as
:func:`api.metrics.engine.split` makes them, except the station-hours still
queued for the refresher (any ``event_invalidations`` row of the station whose
[min_ts, max_ts] reaches the hour), and the parts of an hour at its edges;
those two are read from ``events`` with an index range (``events_station_ts``,
or ``events_ts`` for every station). One statement, so one snapshot: exact, and read-your-writes
like every other figure (docs/metrics.md, "Quality").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from api.metrics.engine import Labelled, SiteFilter, split
from takt.store.rollups import ORIGIN

MICROSECOND = timedelta(microseconds=1)


@dataclass(slots=True)
class UnitTotals:
    """Production units of one (label, station, SKU): all, rejected, those whose event reported
    ``rejected``, and the product_count events."""

    units: int = 0
    rejected: int = 0
    reported: int = 0
    events: int = 0

    def add(self, other: UnitTotals) -> None:
        self.units += other.units
        self.rejected += other.rejected
        self.reported += other.reported
        self.events += other.events


_EVENT_SUMS = (
    "e.station_id, coalesce(e.sku, '') AS sku, e.count::bigint AS units, "
    "coalesce(e.rejected, 0)::bigint AS rejected, "
    "CASE WHEN e.rejected IS NULL THEN 0 ELSE e.count END::bigint AS reported, 1::bigint AS events"
)
_UNITS = "e.event_type = 'product_count' AND NOT e.shadow"

# Spans (label, a, b, sign, is_day): whole days (rollup_units_day) and hours (rollup_units_hour),
# added or subtracted as engine.split makes them. A queued station-hour inside a span counts
# sign × (events − its stored hour row): the stored day and hour rows always agree (one round
# rewrites both), so that replaces the stale hour with the truth either way.
_UNIT_TOTALS = f"""
WITH dirty AS MATERIALIZED (
    SELECT DISTINCT i.station_id, h.bucket
    FROM event_invalidations i CROSS JOIN LATERAL generate_series(
        date_bin('1 hour', i.min_ts, %(origin)s), date_bin('1 hour', i.max_ts, %(origin)s), interval '1 hour'
    ) AS h(bucket)
    WHERE i.max_ts >= i.min_ts {{where_i}}
), spans AS MATERIALIZED (
    SELECT * FROM unnest(%(s_labels)s::int[], %(s_starts)s::timestamptz[], %(s_ends)s::timestamptz[],
                         %(s_signs)s::int[], %(s_days)s::boolean[]) AS w(label, a, b, sign, is_day)
), stale AS MATERIALIZED (
    SELECT w.label, w.sign, d.station_id, d.bucket
    FROM spans w JOIN dirty d ON d.bucket >= w.a AND d.bucket < w.b
)
SELECT label, station_id, sku, sum(units)::bigint, sum(rejected)::bigint, sum(reported)::bigint,
       sum(events)::bigint
FROM (
    SELECT w.label, r.station_id, r.sku, r.units * w.sign AS units, r.rejected * w.sign AS rejected,
           r.reported * w.sign AS reported, r.events * w.sign AS events
    FROM spans w CROSS JOIN LATERAL (
        SELECT * FROM rollup_units_day r WHERE w.is_day AND r.bucket >= w.a AND r.bucket < w.b {{where_r}}
        OFFSET 0
    ) r
    UNION ALL
    SELECT w.label, r.station_id, r.sku, r.units * w.sign, r.rejected * w.sign, r.reported * w.sign,
           r.events * w.sign
    FROM spans w CROSS JOIN LATERAL (
        SELECT * FROM rollup_units_hour r
        WHERE NOT w.is_day AND r.bucket >= w.a AND r.bucket < w.b {{where_r}} OFFSET 0
    ) r
    UNION ALL
    SELECT s.label, r.station_id, r.sku, -r.units * s.sign, -r.rejected * s.sign, -r.reported * s.sign,
           -r.events * s.sign
    FROM stale s JOIN rollup_units_hour r ON r.station_id = s.station_id AND r.bucket = s.bucket {{where_r}}
    UNION ALL
    SELECT s.label, e.station_id, e.sku, e.units * s.sign, e.rejected * s.sign, e.reported * s.sign,
           e.events * s.sign
    FROM stale s CROSS JOIN LATERAL (
        SELECT {_EVENT_SUMS} FROM events e
        WHERE e.station_id = s.station_id AND e.ts >= s.bucket AND e.ts < s.bucket + interval '1 hour'
          AND {_UNITS} {{where_e}} OFFSET 0
    ) e
    UNION ALL
    SELECT p.label, e.*
    FROM unnest(%(p_labels)s::int[], %(p_starts)s::timestamptz[], %(p_ends)s::timestamptz[]) AS p(label, a, b)
    CROSS JOIN LATERAL (
        SELECT {_EVENT_SUMS} FROM events e WHERE e.ts >= p.a AND e.ts < p.b AND {_UNITS} {{where_e}} OFFSET 0
    ) e
) t
GROUP BY 1, 2, 3
HAVING sum(events) <> 0 OR sum(units) <> 0
"""


def _where(params: dict[str, Any], alias: str, site_id: SiteFilter, station_id: str | None) -> str:
    sql = ""
    if station_id is not None:
        params["station_id"] = station_id
        sql += f" AND {alias}.station_id = %(station_id)s"
    if site_id is not None and alias != "i":
        params["sites"] = [site_id] if isinstance(site_id, str) else sorted(site_id)
        # Rollups store a missing site as ''; raw events store NULL.
        sql += f" AND coalesce({alias}.site_id, '') = ANY(%(sites)s::text[])"
    return sql


def unit_totals(
    conn: psycopg.Connection[Any],
    windows: Sequence[Labelled],
    *,
    site_id: SiteFilter = None,
    station_id: str | None = None,
) -> dict[tuple[int, str, str], UnitTotals]:
    """Per (label, station, SKU ('' for none)): production units, rejects, reported units, events."""
    parts = split(windows)
    spans = [(*d, True) for d in parts.days] + [(*h, False) for h in parts.hours]
    params: dict[str, Any] = {
        "origin": ORIGIN,
        "s_labels": [x[0] for x in spans],
        "s_starts": [x[1] for x in spans],
        "s_ends": [x[2] for x in spans],
        "s_signs": [x[3] for x in spans],
        "s_days": [x[4] for x in spans],
        "p_labels": [p[0] for p in parts.parts],
        "p_starts": [p[1] + p[2] * MICROSECOND for p in parts.parts],
        "p_ends": [p[1] + p[3] * MICROSECOND for p in parts.parts],
    }
    sql = _UNIT_TOTALS.format(
        where_i=_where(params, "i", site_id, station_id),
        where_r=_where(params, "r", site_id, station_id),
        where_e=_where(params, "e", site_id, station_id),
    )
    return {
        (label, station, sku): UnitTotals(int(u), int(r), int(rep), int(n))
        for label, station, sku, u, r, rep, n in conn.execute(sql, params).fetchall()
    }
