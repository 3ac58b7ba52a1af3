"""Liveness and readiness: answered on the event loop, never queued behind database requests."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import anyio
import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.settings import ApiSettings

router = APIRouter(tags=["health"])
# Each check answers within this; a stopped or unreachable database is "not ready", not an error.
CHECK_TIMEOUT_S = 1.5
# Threads of checks that overran stay out of the request threads' way; when all of them are
# stuck, the next probe answers "not ready" after CHECK_TIMEOUT_S.
CHECK_THREADS = 4


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process serves requests (no database involved)."""
    return {"status": "healthy"}


def _broker_reachable(mqtt_url: str) -> bool:
    parts = urlsplit(mqtt_url)
    port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _database_reachable(database_url: str) -> bool:
    # Its own short connection, not the pool: readiness must not wait behind busy requests.
    try:
        with psycopg.connect(database_url, connect_timeout=2, autocommit=True) as conn:
            return conn.execute("SELECT 1").fetchone() is not None
    except psycopg.Error:
        return False


async def _within(limiter: anyio.CapacityLimiter, check: Any, arg: str) -> bool:
    with anyio.move_on_after(CHECK_TIMEOUT_S):
        return bool(await anyio.to_thread.run_sync(check, arg, abandon_on_cancel=True, limiter=limiter))
    return False


@router.get("/health/ready", response_model=None)
async def ready(request: Request) -> dict[str, Any] | JSONResponse:
    """Readiness: database and broker reachable; 503 within 2 s when either is not."""
    settings: ApiSettings = request.app.state.settings
    limiter = getattr(request.app.state, "health_limiter", None)
    if limiter is None:
        limiter = request.app.state.health_limiter = anyio.CapacityLimiter(CHECK_THREADS)
    result: dict[str, bool] = {}

    async def run(name: str, check: Any, arg: str) -> None:
        result[name] = await _within(limiter, check, arg)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "database", _database_reachable, settings.database_url)
        tg.start_soon(run, "broker", _broker_reachable, settings.mqtt_url)
    database, broker = result["database"], result["broker"]
    body = {"status": "ready" if database and broker else "not ready", "database": database, "broker": broker}
    return body if database and broker else JSONResponse(body, status_code=503)
