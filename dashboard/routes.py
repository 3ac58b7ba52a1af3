"""Serves the dashboard page and the few endpoints it needs beyond the metrics API.

``mount_dashboard(app, deps)`` is the only thing the API's ``create_app`` calls.
The dashboard imports nothing of the API: the mounting app hands it what its
endpoints need in a :class:`DashboardDeps` (the FastAPI dependencies giving a
pooled connection and admitting viewers, and the site's settings), so they
share the API's pool and bearer-token roles without an import cycle.

No ``from __future__ import annotations`` here: the routes are built inside
:func:`build_router` with dependencies known only then, and FastAPI reads
their annotations at definition time.
"""

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from dashboard import queries
from dashboard.live import LiveHub
from takt.contract import UtcTime

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Committed dist files of the chart library (package data of every install);
# dashboard/package-lock.json records their version, scripts/bootstrap.sh checks them.
VENDOR_FILES = ("uPlot.esm.js", "uPlot.min.css", "uPlot.LICENSE")
MAX_WINDOW = timedelta(days=31)


class _RevalidatedStatic(StaticFiles):
    """Static files that browsers revalidate (ETag) on every load, so an upgrade shows at once."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


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


@dataclass(frozen=True, slots=True)
class ShiftTimes:
    """A daily shift as the filter bar offers it (site-local times)."""

    name: str
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class DashboardSite:
    """The settings the dashboard's endpoints read, given by the mounting app."""

    database_url: str
    site_id: str
    max_state_gap_s: float
    shifts: Mapping[str, Sequence[ShiftTimes]] = field(default_factory=dict)
    timezones: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DashboardDeps:
    """What the mounting app lends the dashboard.

    ``connection`` is a FastAPI dependency yielding a psycopg connection;
    ``viewer`` a FastAPI dependency that admits callers allowed to read
    metrics (it raises 401/403 otherwise) and returns the caller's role, whose
    ``str()`` is the role's name.
    """

    site: DashboardSite
    connection: Callable[..., Iterator[psycopg.Connection[Any]]]
    viewer: Callable[..., Any]


def build_router(deps: DashboardDeps) -> APIRouter:
    """The dashboard's endpoints, using the mounting app's dependencies."""
    Conn = Annotated[psycopg.Connection[Any], Depends(deps.connection)]
    Viewer = Annotated[Any, Depends(deps.viewer)]
    site = deps.site
    router = APIRouter(tags=["dashboard"])

    @router.get("/api/session")
    def session(conn: Conn, role: Viewer) -> dict[str, Any]:
        """The caller's role (the page shows only what it may do) and the filter choices."""
        rows = conn.execute("SELECT DISTINCT site_id FROM gateways WHERE site_id IS NOT NULL").fetchall()
        sites = sorted({site.site_id, *site.timezones, *site.shifts, *(str(r[0]) for r in rows)} - {""})
        return {
            "role": str(role),
            "site_id": site.site_id,
            "sites": sites,
            "shifts": {
                site_id: [
                    {"name": s.name, "start": s.start.isoformat("minutes"), "end": s.end.isoformat("minutes")}
                    for s in shifts
                ]
                for site_id, shifts in site.shifts.items()
            },
            "timezones": dict(site.timezones),
            "max_state_gap_s": site.max_state_gap_s,
        }

    @router.get("/api/now")
    def now(conn: Conn, _: Viewer, site_id: str | None = None) -> dict[str, Any]:
        """What is true right now, whatever the date filter: who is working (docs/metrics.md, "States")."""
        working = queries.working_now(conn, max_gap_s=site.max_state_gap_s, site_id=site_id)
        return {
            "active_workers": len(working),
            "working": [{"worker_id": w, "station_id": s} for w, s in working],
            "at": _iso(datetime.now(UTC)),
        }

    @router.get("/api/stations/{station_id}/workers")
    def station_workers(
        conn: Conn,
        _: Viewer,
        station_id: str,
        *,
        start: Annotated[UtcTime | None, Query(alias="from")] = None,
        end: Annotated[UtcTime | None, Query(alias="to")] = None,
        site_id: str | None = None,
    ) -> list[str]:
        """Ids of the workers seen at a station in the window (the station filter of the worker table)."""
        lo, hi = _window(start, end)
        return queries.workers_at_station(conn, station_id, lo, hi, site_id)

    @router.get("/api/timeline")
    def timeline(
        conn: Conn,
        _: Viewer,
        *,
        worker_id: str | None = None,
        station_id: str | None = None,
        start: Annotated[UtcTime | None, Query(alias="from")] = None,
        end: Annotated[UtcTime | None, Query(alias="to")] = None,
        site_id: str | None = None,
    ) -> dict[str, Any]:
        """State segments (working / idle / absent) of one worker or station, clipped to the window."""
        if (worker_id is None) == (station_id is None):
            raise HTTPException(422, "give exactly one of worker_id, station_id")
        lo, hi = _window(start, end)
        subject: queries.Subject = "worker" if worker_id is not None else "station"
        subject_id = worker_id if worker_id is not None else station_id
        assert subject_id is not None
        segments = queries.timeline(
            conn, subject, subject_id, lo, hi, max_gap_s=site.max_state_gap_s, site_id=site_id
        )
        return {
            "subject": subject,
            "id": subject_id,
            "from": _iso(lo),
            "to": _iso(hi),
            "segments": [{**asdict(s), "start": _iso(s.start), "end": _iso(s.end)} for s in segments],
        }

    @router.get("/api/events/recent")
    def recent_events(
        conn: Conn,
        _: Viewer,
        *,
        worker_id: str | None = None,
        station_id: str | None = None,
        site_id: str | None = None,
        start: Annotated[UtcTime | None, Query(alias="from")] = None,
        end: Annotated[UtcTime | None, Query(alias="to")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[dict[str, Any]]:
        """The newest events with their confidence and model_version, newest first."""
        events = queries.recent_events(
            conn, worker_id=worker_id, station_id=station_id, site_id=site_id, lo=start, hi=end, limit=limit
        )
        return [
            {**asdict(e), "timestamp": _iso(e.timestamp), "received_at": _iso(e.received_at)} for e in events
        ]

    @router.get("/api/live")
    async def live(request: Request, _: Viewer) -> StreamingResponse:
        """Server-sent events: ``change`` with which data changed (events, metrics, gateways).

        Read it with fetch() and a stream reader: EventSource cannot send the
        Authorization header, and tokens do not belong in URLs.
        """
        hub: LiveHub = request.app.state.dashboard_live
        return StreamingResponse(
            hub.stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


def mount_dashboard(app: FastAPI, deps: DashboardDeps, *, live_interval_s: float = 1.0) -> None:
    """Serve the page at /dashboard/ (and redirect / there) and add the endpoints of :func:`build_router`."""
    missing = [name for name in VENDOR_FILES if not (STATIC_DIR / "vendor" / name).exists()]
    if missing:
        logger.warning(
            "dashboard: %s missing from %s; the install is incomplete (they are package data)",
            ", ".join(missing),
            STATIC_DIR / "vendor",
        )

    def data_changed() -> None:
        cache = getattr(app.state, "response_cache", None)
        if cache is not None:
            cache.clear()

    database_url = deps.site.database_url
    app.state.dashboard_live = LiveHub(lambda: database_url, live_interval_s, on_change=data_changed)
    app.include_router(build_router(deps))

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    # Browsers ask the origin for /favicon.ico (the page itself links favicon.svg).
    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "favicon.ico", media_type="image/x-icon", headers={"Cache-Control": "max-age=86400"}
        )

    # The andon wallboard (docs/alerts.md): its own full-screen page.
    @app.get("/dashboard/andon", include_in_schema=False)
    def andon_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "andon.html", headers={"Cache-Control": "no-cache"})

    app.mount("/dashboard", _RevalidatedStatic(directory=STATIC_DIR, html=True), name="dashboard")
