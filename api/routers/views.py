"""The dashboard's views beyond the metrics routes: the session, "now", a day's timeline, the
last events and a station's workers. API routes (same tokens, site scoping and per-person
checks as every read, api.access); the page at /dashboard/ calls them. SQL in dashboard.queries.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from starlette.responses import Response

from api.access import Reader
from api.deps import Conn, Settings
from api.metrics.groups import people, reader_k
from dashboard import queries
from takt.contract import UtcTime

MAX_WINDOW = timedelta(days=31)


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """``start``/``end`` are UtcTime (aware, UTC, in the contract's range) or None for the defaults."""
    hi = end or datetime.now(UTC)
    lo = start or hi - timedelta(days=1)
    if hi <= lo:
        raise HTTPException(422, "'to' must be after 'from'")
    if hi - lo > MAX_WINDOW:
        raise HTTPException(422, "a window covers at most 31 days")
    return lo, hi


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


router = APIRouter(tags=["dashboard"])


@router.get("/api/session")
def session(conn: Conn, settings: Settings, access: Reader) -> dict[str, Any]:
    """The caller's role (the page shows only what it may do), its sites and the filter choices.

    ``per_person``: whether the token may see per-person figures (supervisor and above);
    ``site_scoped``: whether the token reads only ``sites`` (docs/privacy.md)."""
    rows = conn.execute("SELECT DISTINCT site_id FROM gateways WHERE site_id IS NOT NULL").fetchall()
    sites = sorted({settings.site_id, *settings.calendars, *(str(r[0]) for r in rows)} - {""})
    if access.sites is not None:
        sites = sorted(access.sites)
    home = settings.site_id if access.allows(settings.site_id) else sites[0]
    return {
        "role": access.role.value,
        "per_person": access.per_person,
        "site_scoped": access.sites is not None,
        "site_id": home,
        "sites": sites,
        "shifts": {
            site: [
                {"name": s.name, "start": s.start.isoformat("minutes"), "end": s.end.isoformat("minutes")}
                for s in cal.shifts
            ]
            for site, cal in settings.calendars.items()
            if access.allows(site)
        },
        "timezones": {site: cal.timezone for site, cal in settings.calendars.items() if access.allows(site)},
        # Each site's privacy level and minimum group size (TAKT_PRIVACY; docs/privacy.md).
        "privacy": {
            site: {"level": policy.level.value, "min_group": policy.min_group}
            for site in sites
            for policy in [settings.site_privacy(site)]
        },
        "max_state_gap_s": settings.max_state_gap_s,
    }


@router.get("/api/now")
def now(
    conn: Conn, settings: Settings, access: Reader, response: Response, site_id: str | None = None
) -> dict[str, Any]:
    """What is true right now, whatever the date filter: who is working (docs/metrics.md, "States").

    Worker ids read "(hidden)" without the per-person right; for such readers, fewer than k
    people working is withheld (``active_workers`` null, ``withheld`` true: docs/metrics.md)."""
    sites = access.site(site_id)
    working = queries.working_now(conn, max_gap_s=settings.max_state_gap_s, site_id=sites)
    access.audited(conn, response)
    k = reader_k(settings, access.per_person, sites)
    withheld = k > 1 and 0 < len({w for w, _s in working}) < k
    return {
        "active_workers": None if withheld else len(working),
        "working": [] if withheld else [{"worker_id": access.worker(w), "station_id": s} for w, s in working],
        "withheld": withheld,
        "at": _iso(datetime.now(UTC)),
    }


@router.get("/api/stations/{station_id}/workers")
def station_workers(
    conn: Conn,
    access: Reader,
    response: Response,
    station_id: str,
    *,
    start: Annotated[UtcTime | None, Query(alias="from")] = None,
    end: Annotated[UtcTime | None, Query(alias="to")] = None,
    site_id: str | None = None,
) -> list[str]:
    """Ids of the workers seen at a station in the window (the station filter of the worker table).

    Needs the per-person right (supervisor and above)."""
    access.require_per_person()
    sites = access.site(site_id)
    access.check(conn, "station", station_id)
    lo, hi = _window(start, end)
    access.audited(conn, response)
    return queries.workers_at_station(conn, station_id, lo, hi, sites)


@router.get("/api/timeline")
def timeline(
    conn: Conn,
    settings: Settings,
    access: Reader,
    response: Response,
    *,
    worker_id: str | None = None,
    station_id: str | None = None,
    start: Annotated[UtcTime | None, Query(alias="from")] = None,
    end: Annotated[UtcTime | None, Query(alias="to")] = None,
    site_id: str | None = None,
) -> dict[str, Any]:
    """State segments (working / idle / absent) of one worker or station, clipped to the window.

    A worker's timeline needs the per-person right (supervisor and above); without it a station's
    segments carry "(hidden)" for the worker id."""
    if (worker_id is None) == (station_id is None):
        raise HTTPException(422, "give exactly one of worker_id, station_id")
    if worker_id is not None:
        access.require_per_person()
    sites = access.site(site_id)
    lo, hi = _window(start, end)
    subject: queries.Subject = "worker" if worker_id is not None else "station"
    subject_id = worker_id if worker_id is not None else station_id
    assert subject_id is not None
    access.check(conn, subject, subject_id)
    k = reader_k(settings, access.per_person, sites)
    if k > 1 and subject == "station":
        per_station, _ = people(conn, [(0, lo, hi)], sites)
        if 0 < per_station.get((0, subject_id), 0) < k:
            raise HTTPException(
                403, f"withheld: this timeline is about fewer than {k} people (minimum group size)"
            )
    segments = queries.timeline(
        conn, subject, subject_id, lo, hi, max_gap_s=settings.max_state_gap_s, site_id=sites
    )
    access.audited(conn, response, worker_id)
    return {
        "subject": subject,
        "id": subject_id,
        "from": _iso(lo),
        "to": _iso(hi),
        "segments": [
            {**asdict(s), "worker_id": access.worker(s.worker_id), "start": _iso(s.start), "end": _iso(s.end)}
            for s in segments
        ],
    }


@router.get("/api/events/recent")
def recent_events(
    conn: Conn,
    settings: Settings,
    access: Reader,
    response: Response,
    *,
    worker_id: str | None = None,
    station_id: str | None = None,
    site_id: str | None = None,
    start: Annotated[UtcTime | None, Query(alias="from")] = None,
    end: Annotated[UtcTime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """The newest events with their confidence and model_version, newest first.

    Asking for one worker's events needs the per-person right (supervisor and above); without it
    worker ids read "(hidden)", and events of stations with fewer than k people in the span of
    the answer (its oldest to its newest event) are left out (minimum group size, docs/metrics.md)."""
    if worker_id is not None:
        access.require_per_person()
        access.check(conn, "worker", worker_id)
    if station_id is not None:
        access.check(conn, "station", station_id)
    events = queries.recent_events(
        conn,
        worker_id=worker_id,
        station_id=station_id,
        site_id=access.site(site_id),
        lo=start,
        hi=end,
        limit=limit,
    )
    access.audited(conn, response, worker_id)
    sites = access.site(site_id)
    k = reader_k(settings, access.per_person, sites)
    if k > 1 and events:
        span = (
            min(e.timestamp for e in events),
            max(e.timestamp for e in events) + timedelta(microseconds=1),
        )
        per_station, _ = people(conn, [(0, *span)], sites)
        events = [e for e in events if per_station.get((0, e.station_id), 0) >= k]
    return [
        {
            **asdict(e),
            "worker_id": access.worker(e.worker_id),
            "timestamp": _iso(e.timestamp),
            "received_at": _iso(e.received_at),
        }
        for e in events
    ]
