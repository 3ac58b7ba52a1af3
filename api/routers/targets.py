"""Station targets (ideal cycle times with effective dates, history kept) and lines (docs/metrics.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.access import Reader
from api.deps import Conn, Supervisor
from api.metrics.engine import SiteFilter, site_list, site_matches
from takt.contract import UtcTime
from takt.contract.events import EntityId, Label
from takt.store.targets import station_sites

router = APIRouter(tags=["targets"])

IdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")]
SiteQuery = Annotated[
    str | None, Query(max_length=64, description="Only if it belongs to this site (else 404)")
]


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ideal_cycle_time_s: float | None = Field(
        default=None, gt=0, le=86_400, allow_inf_nan=False, description="Seconds per unit."
    )
    target_units_per_hour: float | None = Field(
        default=None,
        gt=0,
        le=3_600_000,
        allow_inf_nan=False,
        description="A target rate instead of a cycle time; stored as 3600 / rate seconds per unit.",
    )
    sku: EntityId | None = Field(default=None, description="One product at the station; omitted: every SKU.")
    effective_from: UtcTime | None = Field(
        default=None, description="ISO 8601 with a UTC offset; omitted: now. Applies from then on."
    )

    @model_validator(mode="after")
    def _one_figure(self) -> TargetIn:
        if (self.ideal_cycle_time_s is None) == (self.target_units_per_hour is None):
            raise ValueError("give exactly one of ideal_cycle_time_s and target_units_per_hour")
        return self

    def cycle_time(self) -> float:
        if self.ideal_cycle_time_s is not None:
            return self.ideal_cycle_time_s
        assert self.target_units_per_hour is not None
        return 3600.0 / self.target_units_per_hour


class TargetChange(BaseModel):
    target_id: int
    sku: str | None
    effective_from: datetime
    ideal_cycle_time_s: float
    target_units_per_hour: float
    set_by: str
    set_at: datetime


class StationTargets(BaseModel):
    station_id: str
    sku: str | None
    current: TargetChange | None = Field(description="The change in force now (or at ?at=).")
    history: list[TargetChange] = Field(description="Every change, oldest effective_from first.")


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    name: Label | None = None
    stations: list[EntityId] = Field(min_length=1, max_length=200, description="In line order.")

    @model_validator(mode="after")
    def _distinct(self) -> LineIn:
        if len(set(self.stations)) != len(self.stations):
            raise ValueError("a station appears twice in the line")
        return self


class Line(BaseModel):
    line_id: str
    site_id: str
    name: str
    stations: list[str]
    updated_by: str
    updated_at: datetime


def require_station(conn: psycopg.Connection[Any], station_id: str, site_id: SiteFilter) -> None:
    """404 for an unknown station, or one not at ``site_id`` (one site, or any of a token's) when given."""
    if conn.execute("SELECT 1 FROM workstations WHERE station_id = %s", (station_id,)).fetchone() is None:
        raise HTTPException(404, f"unknown station_id {station_id!r}")
    if site_id is not None and not any(site_matches(at, site_id) for at in station_sites(conn, station_id)):
        raise HTTPException(404, f"unknown station_id {station_id!r} at the sites asked for")


_CHANGES = (
    "SELECT target_id, NULLIF(sku, ''), effective_from, ideal_cycle_time_s, set_by, set_at "
    "FROM station_targets WHERE station_id = %s AND sku = %s ORDER BY effective_from, target_id"
)


def _change(row: tuple[Any, ...]) -> TargetChange:
    return TargetChange(
        target_id=row[0],
        sku=row[1],
        effective_from=row[2],
        ideal_cycle_time_s=row[3],
        target_units_per_hour=round(3600.0 / row[3], 6),
        set_by=row[4],
        set_at=row[5],
    )


def _targets(conn: psycopg.Connection[Any], station_id: str, sku: str | None, at: datetime) -> StationTargets:
    history = [_change(r) for r in conn.execute(_CHANGES, (station_id, sku or "")).fetchall()]
    current = None
    for c in history:
        if c.effective_from <= at:
            current = c
    return StationTargets(station_id=station_id, sku=sku, current=current, history=history)


@router.put("/targets/stations/{station_id}")
def put_target(station_id: IdPath, body: TargetIn, conn: Conn, role: Supervisor) -> StationTargets:
    """Record a target change (supervisor or admin): in force from ``effective_from`` on; history kept."""
    require_station(conn, station_id, None)
    effective = body.effective_from or datetime.now(UTC)
    conn.execute(
        "INSERT INTO station_targets (station_id, sku, effective_from, ideal_cycle_time_s, set_by) "
        "VALUES (%s, %s, %s, %s, %s)",
        (station_id, body.sku or "", effective, body.cycle_time(), role.value),
    )
    return _targets(conn, station_id, body.sku, datetime.now(UTC))


@router.get("/targets/stations/{station_id}")
def get_target(
    station_id: IdPath,
    conn: Conn,
    access: Reader,
    site_id: SiteQuery = None,
    sku: Annotated[str | None, Query(max_length=64)] = None,
    at: Annotated[UtcTime | None, Query(description="The target in force then (default now)")] = None,
) -> StationTargets:
    """The station's target in force and its history (one SKU's with ``?sku=``)."""
    require_station(conn, station_id, access.site(site_id))
    return _targets(conn, station_id, sku, at or datetime.now(UTC))


def _line(conn: psycopg.Connection[Any], line_id: str, site_id: SiteFilter) -> Line:
    row = conn.execute(
        "SELECT site_id, name, updated_by, updated_at FROM lines WHERE line_id = %s", (line_id,)
    ).fetchone()
    if row is None or not site_matches(row[0], site_id):
        where = f" at site {site_id!r}" if isinstance(site_id, str) else ""
        raise HTTPException(404, f"unknown line_id {line_id!r}{where}")
    stations = [
        r[0]
        for r in conn.execute(
            "SELECT station_id FROM line_stations WHERE line_id = %s ORDER BY position", (line_id,)
        ).fetchall()
    ]
    return Line(
        line_id=line_id, site_id=row[0], name=row[1], stations=stations, updated_by=row[2], updated_at=row[3]
    )


def get_line_row(conn: psycopg.Connection[Any], line_id: str, site_id: SiteFilter) -> Line:
    return _line(conn, line_id, site_id)


@router.put("/lines/{line_id}")
def put_line(line_id: IdPath, body: LineIn, conn: Conn, role: Supervisor) -> Line:
    """Create or replace a line: its site and its stations in order (supervisor or admin)."""
    known = {
        r[0]
        for r in conn.execute(
            "SELECT station_id FROM workstations WHERE station_id = ANY(%s)", (body.stations,)
        ).fetchall()
    }
    missing = [s for s in body.stations if s not in known]
    if missing:
        raise HTTPException(404, f"unknown station_id {missing[0]!r}")
    with conn.transaction():
        conn.execute(
            "INSERT INTO lines (line_id, site_id, name, updated_by) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (line_id) DO UPDATE SET site_id = excluded.site_id, name = excluded.name, "
            "updated_by = excluded.updated_by, updated_at = now()",
            (line_id, body.site_id, body.name or line_id, role.value),
        )
        conn.execute("DELETE FROM line_stations WHERE line_id = %s", (line_id,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO line_stations (line_id, position, station_id) VALUES (%s, %s, %s)",
                [(line_id, i, s) for i, s in enumerate(body.stations)],
            )
    return _line(conn, line_id, None)


@router.get("/lines/{line_id}")
def get_line(line_id: IdPath, conn: Conn, access: Reader, site_id: SiteQuery = None) -> Line:
    return _line(conn, line_id, access.site(site_id))


@router.get("/lines")
def list_lines(
    conn: Conn, access: Reader, site_id: Annotated[str | None, Query(max_length=64)] = None
) -> list[Line]:
    ids = conn.execute(
        "SELECT line_id FROM lines WHERE %(s)s::text[] IS NULL OR site_id = ANY(%(s)s) ORDER BY line_id",
        {"s": site_list(access.site(site_id))},
    ).fetchall()
    return [_line(conn, r[0], None) for r in ids]
