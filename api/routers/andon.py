"""The andon wallboard's one read: stations' states now, units against target, open incidents.

Readable with a view-only ``kiosk`` token (``takt api token create --role kiosk``)
as well as by any reader; nothing else accepts a kiosk token.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from api.alerts.deliver import INCIDENT_SQL, incident_json
from api.alerts.evaluate import UnknownLineError, line_stations, scope_target
from api.deps import Conn, Settings, Wallboard
from api.metrics.calendar import planned
from api.routers.alerts import Incident, caller_site
from api.settings import SiteCalendar
from takt import states

router = APIRouter(tags=["alerts"])


class StationNow(BaseModel):
    station_id: str
    name: str | None
    state: str = Field(description="working, idle, absent, or unknown (nothing heard recently).")
    since: datetime | None = Field(description="When the station entered this state (as far as seen).")
    units_today: int
    units_last_hour: int


class Figures(BaseModel):
    units_today: int | None
    units_per_hour: float | None


class Andon(BaseModel):
    site_id: str
    line_id: str | None
    at: datetime
    timezone: str
    actual: Figures
    target: Figures = Field(
        description="What the scope's targets ask for: units since midnight and units in the last hour "
        "(``units_per_hour``), each counting planned production time only (so not before the shift, "
        "nor in a planned break), by the station metrics' rule (``target_units``: SKU-weighted by the "
        "units made); null where no station has a targeted period then."
    )
    stations: list[StationNow]
    incidents: list[Incident]


def targets(
    conn: psycopg.Connection[Any],
    site_id: str,
    stations: list[str] | None,
    calendar: SiteCalendar | None,
    midnight: datetime,
    at: datetime,
) -> Figures:
    """The scope's target now (docs/metrics.md, "Targets"): the units its stations' targets ask
    for since midnight and in the last hour, planned production time only (the counterparts of
    the actual units today and in the last hour), by the station metrics' rule (SKU-weighted:
    :func:`api.alerts.evaluate.scope_target`); null where no period of the scope is targeted."""
    today, last_hour = scope_target(
        conn,
        site_id,
        stations,
        planned(calendar, midnight, at, None),
        planned(calendar, at - timedelta(hours=1), at, None),
    ).target_units
    return Figures(
        units_today=None if today is None else round(today),
        units_per_hour=None if last_hour is None else round(last_hour, 1),
    )


@router.get("/andon")
def andon(
    conn: Conn,
    settings: Settings,
    request: Request,
    _: Wallboard,
    site_id: str | None = None,
    line: str | None = None,
) -> Andon:
    """Everything the wallboard shows, in one answer (it polls every few seconds)."""
    site = caller_site(request, site_id) or settings.site_id
    stations: list[str] | None = None
    if line is not None:
        try:
            stations = line_stations(conn, line)
        except UnknownLineError as exc:
            raise HTTPException(404, str(exc)) from None
    at = datetime.now(UTC)
    calendar = settings.calendars.get(site)
    tz = calendar.timezone if calendar else "UTC"
    midnight = datetime.combine(at.astimezone(ZoneInfo(tz)).date(), time(0), tzinfo=ZoneInfo(tz)).astimezone(
        UTC
    )
    scope = "e.site_id = %(site)s" + ("" if stations is None else " AND e.station_id = ANY(%(stations)s)")
    params: dict[str, Any] = {
        "site": site,
        "stations": stations,
        "at": at,
        "gap": settings.max_state_gap_s,
        "lookback": states.lookback_s(settings.max_state_gap_s),
        "midnight": midnight,
        "hour": at - timedelta(hours=1),
    }
    kinds: dict[str, set[str]] = {}
    for _w, station, state, _heard in conn.execute(states.in_force_sql(scope), params).fetchall():
        kinds.setdefault(str(station), set()).add(str(state))
    now_state = {
        s: "working" if "working" in k else "idle" if "idle" in k else "absent" for s, k in kinds.items()
    }
    units = {
        str(r[0]): (int(r[1]), int(r[2]))
        for r in conn.execute(
            "SELECT e.station_id, coalesce(sum(e.count), 0), "
            "coalesce(sum(e.count) FILTER (WHERE e.ts > %(hour)s), 0) "
            f"FROM events e WHERE {scope} AND NOT e.shadow AND e.event_type = 'product_count' "
            "AND e.ts >= %(midnight)s AND e.ts <= %(at)s GROUP BY 1",
            params,
        ).fetchall()
    }
    names = {str(r[0]): r[1] for r in conn.execute("SELECT station_id, name FROM workstations").fetchall()}
    since: dict[str, datetime] = {}
    if now_state:
        ids = sorted(now_state)
        # The state began at its first event after the station's last event of another state
        # (or where that one ended, if later): as station_idle's incidents count it.
        rows = conn.execute(
            """
            WITH recent AS (
                SELECT e.station_id, e.event_type, e.ts, k.state,
                       e.ts + coalesce(e.effective_duration_s, e.duration_s, 0) * interval '1 second' AS reach
                FROM events e JOIN unnest(%(ids)s::text[], %(st)s::text[]) AS k(station, state)
                  ON e.station_id = k.station
                WHERE e.site_id = %(site)s AND NOT e.shadow AND e.event_type <> 'product_count'
                  AND e.ts <= %(at)s AND e.ts > %(at)s - %(lookback)s * interval '1 second'
            ), other AS (
                SELECT station_id, max(ts) AS last_ts, max(reach) AS reach
                FROM recent WHERE event_type <> state GROUP BY 1
            )
            SELECT r.station_id, greatest(max(o.reach), min(r.ts))
            FROM recent r LEFT JOIN other o USING (station_id)
            WHERE r.event_type = r.state AND (o.last_ts IS NULL OR r.ts >= o.last_ts)
            GROUP BY 1
            """,
            {**params, "ids": ids, "st": [now_state[s] for s in ids]},
        ).fetchall()
        since = {str(r[0]): min(r[1], at) for r in rows if r[1] is not None}
    shown = sorted(set(now_state) | set(units))
    incidents = [
        Incident.model_validate(incident_json(r))
        for r in _dicts(
            conn.execute(
                INCIDENT_SQL + " WHERE i.site_id = %s AND i.resolved_at IS NULL "
                "ORDER BY i.started_at DESC LIMIT 50",
                (site,),
            )
        )
        if stations is None or r["subject"] in stations or not r["details"].get("station_id")
    ]
    today = sum(u[0] for u in units.values())
    last_hour = sum(u[1] for u in units.values())
    return Andon(
        site_id=site,
        line_id=line,
        at=at,
        timezone=tz,
        actual=Figures(units_today=today, units_per_hour=float(last_hour)),
        target=targets(conn, site, stations, calendar, midnight, at),
        stations=[
            StationNow(
                station_id=s,
                name=names.get(s),
                state=now_state.get(s, "unknown"),
                since=since.get(s),
                units_today=units.get(s, (0, 0))[0],
                units_last_hour=units.get(s, (0, 0))[1],
            )
            for s in shown
        ],
        incidents=incidents,
    )


def _dicts(cur: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
