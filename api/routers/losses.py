"""Loss reasons per site, tags on station time ranges, the Pareto of lost time (docs/metrics.md, "Losses")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.access import Reader
from api.csv_export import CsvRoute
from api.deps import Conn, Supervisor, Viewer
from api.metrics.engine import site_list, station_totals
from api.metrics.intervals import intersect
from api.routers.metrics import DIGITS, ScopeDep
from api.routers.targets import IdPath, get_line_row, require_station
from takt.contract import UtcTime
from takt.contract.events import EntityId, Label
from takt.store.targets import station_sites

router = APIRouter(tags=["losses"], route_class=CsvRoute)
DEFAULT_THRESHOLD_S = 300.0
SiteId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_id: SiteId
    code: EntityId
    label: Label


class Reason(BaseModel):
    reason_id: int
    site_id: str
    code: str
    label: str
    created_by: str
    created_at: datetime


class Reasons(BaseModel):
    site_id: str
    untagged_threshold_s: float = Field(description="Loss segments shorter than this need no reason.")
    reasons: list[Reason]


class SiteLossSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    untagged_threshold_s: float = Field(ge=0, le=86_400, allow_inf_nan=False)


class TagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    station_id: EntityId
    worker_id: EntityId | None = Field(default=None, description="Whose time it was, when one worker's.")
    from_: UtcTime = Field(alias="from")
    to: UtcTime
    reason_id: int

    @model_validator(mode="after")
    def _ordered(self) -> TagIn:
        if not self.from_ < self.to:
            raise ValueError("'from' must be earlier than 'to'")
        return self


class Tag(BaseModel):
    tag_id: int
    site_id: str
    station_id: str
    worker_id: str | None
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    reason_id: int
    reason_code: str
    tagged_by: str
    tagged_at: datetime


def _threshold(conn: psycopg.Connection[Any], site_id: str) -> float:
    row = conn.execute(
        "SELECT untagged_threshold_s FROM loss_sites WHERE site_id = %s", (site_id,)
    ).fetchone()
    return float(row[0]) if row else DEFAULT_THRESHOLD_S


def _reasons(conn: psycopg.Connection[Any], site_id: str) -> Reasons:
    rows = conn.execute(
        "SELECT reason_id, site_id, code, label, created_by, created_at FROM loss_reasons "
        "WHERE site_id = %s ORDER BY code",
        (site_id,),
    ).fetchall()
    return Reasons(
        site_id=site_id,
        untagged_threshold_s=_threshold(conn, site_id),
        reasons=[
            Reason(reason_id=r[0], site_id=r[1], code=r[2], label=r[3], created_by=r[4], created_at=r[5])
            for r in rows
        ],
    )


@router.post("/reasons", status_code=201)
def add_reason(body: ReasonIn, conn: Conn, role: Supervisor) -> Reason:
    """Add a reason to a site's list (supervisor or admin); a code already on the list answers 409."""
    row = conn.execute(
        "INSERT INTO loss_reasons (site_id, code, label, created_by) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (site_id, code) DO NOTHING RETURNING reason_id, created_at",
        (body.site_id, body.code, body.label, role.value),
    ).fetchone()
    if row is None:
        raise HTTPException(409, f"reason {body.code!r} is already on site {body.site_id!r}'s list")
    return Reason(
        reason_id=row[0], site_id=body.site_id, code=body.code, label=body.label, created_by=role.value,
        created_at=row[1],
    )  # fmt: skip


@router.get("/reasons")
def list_reasons(conn: Conn, access: Reader, site_id: Annotated[str, Query(max_length=64)]) -> Reasons:
    """A site's reasons and the threshold below which a loss needs none."""
    access.site(site_id)  # 404 for a site outside a site-scoped token's
    return _reasons(conn, site_id)


@router.put("/reasons/settings/{site_id}")
def put_loss_settings(site_id: IdPath, body: SiteLossSettings, conn: Conn, _: Supervisor) -> Reasons:
    conn.execute(
        "INSERT INTO loss_sites (site_id, untagged_threshold_s) VALUES (%s, %s) "
        "ON CONFLICT (site_id) DO UPDATE SET untagged_threshold_s = excluded.untagged_threshold_s",
        (site_id, body.untagged_threshold_s),
    )
    return _reasons(conn, site_id)


_TAGS = (
    "SELECT t.tag_id, t.site_id, t.station_id, t.worker_id, t.from_ts, t.to_ts, t.reason_id, r.code, "
    "t.tagged_by, t.tagged_at FROM loss_tags t JOIN loss_reasons r USING (reason_id) "
)


def _tag(r: tuple[Any, ...]) -> Tag:
    return Tag(
        tag_id=r[0], site_id=r[1], station_id=r[2], worker_id=r[3], from_=r[4], to=r[5], reason_id=r[6],
        reason_code=r[7], tagged_by=r[8], tagged_at=r[9],
    )  # fmt: skip


@router.post("/loss-tags", status_code=201)
def add_tag(body: TagIn, conn: Conn, role: Supervisor) -> Tag:
    """Tag a station's time range (a segment of its timeline, or part of one) with a reason of its site.

    Tags are time ranges, so they stay when late events re-derive the segments under them. Tags of
    one station do not overlap (409).
    """
    reason = conn.execute(
        "SELECT site_id FROM loss_reasons WHERE reason_id = %s", (body.reason_id,)
    ).fetchone()
    if reason is None:
        raise HTTPException(404, f"unknown reason_id {body.reason_id}")
    site = reason[0]
    require_station(conn, body.station_id, None)
    sites = station_sites(conn, body.station_id)
    if sites and site not in sites:
        raise HTTPException(422, f"reason {body.reason_id} belongs to site {site!r}, not the station's")
    with conn.transaction():
        # One tagger at a time per station, so two overlapping tags cannot both pass the check.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('loss_tags:' || %s))", (body.station_id,))
        clash = conn.execute(
            "SELECT tag_id FROM loss_tags WHERE station_id = %s AND from_ts < %s AND to_ts > %s",
            (body.station_id, body.to, body.from_),
        ).fetchone()
        if clash is not None:
            raise HTTPException(409, f"overlaps tag {clash[0]} of station {body.station_id!r}")
        row = conn.execute(
            "INSERT INTO loss_tags (site_id, station_id, worker_id, from_ts, to_ts, reason_id, tagged_by) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING tag_id",
            (site, body.station_id, body.worker_id, body.from_, body.to, body.reason_id, role.value),
        ).fetchone()
    assert row is not None
    found = conn.execute(_TAGS + "WHERE t.tag_id = %s", (row[0],)).fetchone()
    assert found is not None
    return _tag(found)


@router.get("/loss-tags", response_model_by_alias=True)
def list_tags(
    conn: Conn,
    s: ScopeDep,
    _: Viewer,
    station_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[Tag]:
    """Tags overlapping the window (one station's with ``station_id``; a site's with ``site_id``)."""
    rows = conn.execute(
        _TAGS + "WHERE t.from_ts < %(hi)s AND t.to_ts > %(lo)s "
        "AND (%(st)s::text IS NULL OR t.station_id = %(st)s) "
        "AND (%(site)s::text[] IS NULL OR t.site_id = ANY(%(site)s)) "
        "ORDER BY t.station_id, t.from_ts",
        {"lo": s.lo, "hi": s.hi, "st": station_id, "site": site_list(s.site_id)},
    ).fetchall()
    return [_tag(r) for r in rows]


class LossRow(BaseModel):
    reason_id: int | None = Field(description="Null for the automatic rows (planned breaks, untagged).")
    code: str
    label: str
    lost_hours: float
    share_percentage: float = Field(description="Of the lost hours (planned breaks are not lost time).")


class Losses(BaseModel):
    stations: list[str]
    lost_hours: float = Field(description="Observed but not working, inside the planned production time.")
    planned_break_hours: float
    rows: list[LossRow] = Field(description="Largest first; 'untagged' holds lost time without a tag.")


@router.get("/metrics/losses")
def losses(
    conn: Conn,
    s: ScopeDep,
    _: Viewer,
    station_id: Annotated[str | None, Query(max_length=64)] = None,
    line_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Losses:
    """Pareto of lost time by reason, per window, station, line (or every station) and shift."""
    if station_id is not None and line_id is not None:
        raise HTTPException(422, "give at most one of station_id and line_id")
    stations: list[str] | None = None
    if station_id is not None:
        require_station(conn, station_id, s.site_id)
        stations = [station_id]
    elif line_id is not None:
        stations = get_line_row(conn, line_id, s.site_id).stations
    tags = conn.execute(
        "SELECT t.station_id, t.from_ts, t.to_ts, t.reason_id, r.code, r.label FROM loss_tags t "
        "JOIN loss_reasons r USING (reason_id) WHERE t.from_ts < %(hi)s AND t.to_ts > %(lo)s "
        "AND (%(ids)s::text[] IS NULL OR t.station_id = ANY(%(ids)s)) "
        "AND (%(site)s::text[] IS NULL OR t.site_id = ANY(%(site)s))",
        {"lo": s.lo, "hi": s.hi, "ids": stations, "site": site_list(s.site_id)},
    ).fetchall()
    windows = [(0, a, b) for a, b in s.planned]
    for i, (_st, a, b, *_rest) in enumerate(tags, start=1):
        windows += [(i, x, y) for x, y in intersect(s.planned, [(a, b)])]
    one = station_id
    totals = station_totals(conn, windows, site_id=s.site_id, station_id=one, gap_s=s.gap_s)
    if stations is None:
        stations = sorted({sid for (label, sid), t in totals.items() if label == 0 and t.observed_s > 0})
    chosen = set(stations)

    def lost(label: int, sid: str) -> float:
        t = totals.get((label, sid))
        return max(t.observed_s - t.working_s, 0.0) if t else 0.0

    total = sum(lost(0, sid) for sid in chosen)
    by_reason: dict[int, list[Any]] = {}
    for i, (sid, _a, _b, reason_id, code, label) in enumerate(tags, start=1):
        if sid in chosen:
            by_reason.setdefault(reason_id, [code, label, 0.0])[2] += lost(i, sid)
    tagged = sum(v[2] for v in by_reason.values())
    breaks = sum((b - a).total_seconds() for a, b in s.breaks) * len(chosen)

    def share(x: float) -> float:
        return round(x / total * 100, DIGITS) if total > 0 else 0.0

    rows = [
        LossRow(reason_id=rid, code=v[0], label=v[1], lost_hours=round(v[2] / 3600, DIGITS),
                share_percentage=share(v[2]))
        for rid, v in by_reason.items()
    ]  # fmt: skip
    rest = max(total - tagged, 0.0)
    rows.append(
        LossRow(reason_id=None, code="untagged", label="Untagged", lost_hours=round(rest / 3600, DIGITS),
                share_percentage=share(rest))
    )  # fmt: skip
    rows.sort(key=lambda r: (-r.lost_hours, r.code))
    return Losses(
        stations=stations,
        lost_hours=round(total / 3600, DIGITS),
        planned_break_hours=round(breaks / 3600, DIGITS),
        rows=rows,
    )
