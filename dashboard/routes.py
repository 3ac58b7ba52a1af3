"""Serves the dashboard page, its wallboard and its live change stream.

``mount_dashboard(app, deps)`` is the only thing the API's ``create_app`` calls.
The dashboard imports nothing of the API: the mounting app hands it what its
endpoints need in a :class:`DashboardDeps` (the database to watch and the
FastAPI dependency admitting viewers), so the stream shares the API's
bearer-token roles without an import cycle. The JSON views the page reads
(session, now, timeline, last events) are API routes: api/routers/views.py.

No ``from __future__ import annotations`` here: the routes are built inside
:func:`build_router` with dependencies known only then, and FastAPI reads
their annotations at definition time.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from dashboard.live import LiveHub

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


@dataclass(frozen=True, slots=True)
class DashboardDeps:
    """What the mounting app lends the dashboard.

    ``database_url`` is where the live stream polls for changes; ``viewer`` a
    FastAPI dependency that admits callers allowed to read metrics (it raises
    401/403 otherwise).
    """

    database_url: str
    viewer: Callable[..., Any]


def build_router(deps: DashboardDeps) -> APIRouter:
    """The dashboard's endpoints, using the mounting app's dependencies."""
    Viewer = Annotated[Any, Depends(deps.viewer)]
    router = APIRouter(tags=["dashboard"])

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

    database_url = deps.database_url
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
