"""Targets and lines as stored (migration 0009_targets): reads shared by the API's routes and figures."""

from __future__ import annotations

from typing import Any

import psycopg

from takt.targets import Change, StationTargets


def station_sites(conn: psycopg.Connection[Any], station_id: str) -> set[str]:
    """The sites a station belongs to: the sites of the lines listing it and of its rolled-up events."""
    rows = conn.execute(
        "SELECT l.site_id FROM line_stations s JOIN lines l USING (line_id) WHERE s.station_id = %(s)s "
        "UNION SELECT site_id FROM rollup_station_day WHERE station_id = %(s)s AND site_id <> '' "
        "UNION SELECT site_id FROM rollup_station_hour WHERE station_id = %(s)s AND site_id <> ''",
        {"s": station_id},
    ).fetchall()
    return {r[0] for r in rows}


def load_targets(
    conn: psycopg.Connection[Any], stations: list[str] | None = None
) -> dict[str, StationTargets]:
    """Per station with any target, its station-wide and per-SKU changes in the order they count."""
    params: dict[str, Any] = {}
    where = ""
    if stations is not None:
        where = "WHERE station_id = ANY(%(ids)s)"
        params["ids"] = stations
    wide: dict[str, list[Change]] = {}
    skus: dict[str, dict[str, list[Change]]] = {}
    for station, sku, at, ict in conn.execute(
        f"SELECT station_id, sku, effective_from, ideal_cycle_time_s FROM station_targets {where} "
        "ORDER BY station_id, sku, effective_from, target_id",
        params,
    ).fetchall():
        if sku:
            skus.setdefault(station, {}).setdefault(sku, []).append(Change(at, ict))
        else:
            wide.setdefault(station, []).append(Change(at, ict))
    return {st: StationTargets(wide.get(st, []), skus.get(st, {})) for st in sorted({*wide, *skus})}


def stations_elsewhere(conn: psycopg.Connection[Any], site_id: str | frozenset[str]) -> set[str]:
    """Stations known at other sites only (lines, rolled-up days), never at ``site_id`` (one
    site, or any of a site-scoped token's).

    A station not rolled up yet has no known site and is not among them: its time at the site is
    what the site-filtered totals measure anyway.
    """
    rows = conn.execute(
        "WITH known AS (SELECT s.station_id, l.site_id FROM line_stations s JOIN lines l USING (line_id) "
        "  UNION SELECT DISTINCT station_id, site_id FROM rollup_station_day WHERE site_id <> '') "
        "SELECT station_id FROM known GROUP BY station_id HAVING NOT bool_or(site_id = ANY(%s::text[]))",
        ([site_id] if isinstance(site_id, str) else sorted(site_id),),
    ).fetchall()
    return {r[0] for r in rows}
