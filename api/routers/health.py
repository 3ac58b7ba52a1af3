"""Liveness and readiness."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import Conn, Settings

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "healthy"}


def _broker_reachable(mqtt_url: str) -> bool:
    parts = urlsplit(mqtt_url)
    port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


@router.get("/health/ready", response_model=None)
def ready(conn: Conn, settings: Settings) -> dict[str, Any] | JSONResponse:
    database = conn.execute("SELECT 1").fetchone() is not None
    broker = _broker_reachable(settings.mqtt_url)
    body = {"status": "ready" if database and broker else "not ready", "database": database, "broker": broker}
    return body if database and broker else JSONResponse(body, status_code=503)
