"""A real uvicorn serving the API and the dashboard against a fresh PostgreSQL database.

A test changes the server's settings with ``@pytest.mark.dash_settings(**fields)``,
e.g. ``calendars={"site-1": {"timezone": "America/Chicago"}}`` for a site that is
not in UTC.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import uvicorn

from api.app import create_app
from api.security import Role, create_token
from api.settings import ApiSettings
from devstack.system import free_port
from takt.store.db import upgrade

ADMIN = "dash-admin-token"


@dataclass(frozen=True)
class Server:
    url: str
    dsn: str
    settings: ApiSettings
    viewer_token: str
    gateway_token: str


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "dash_settings(**fields): ApiSettings fields of the dashboard server")


@pytest.fixture
def dash_server(fresh_database: str, request: pytest.FixtureRequest) -> Iterator[Server]:
    marker = request.node.get_closest_marker("dash_settings")
    overrides: dict[str, object] = dict(marker.kwargs) if marker else {}
    upgrade(fresh_database)
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        viewer = create_token(conn, Role.VIEWER, "viewer")
        gateway = create_token(conn, Role.GATEWAY, "gw", gateway_id="gw-dash", site_id="site-dash")
    settings = ApiSettings(
        database_url=fresh_database,
        admin_token=ADMIN,
        refresh_interval_s=0.2,
        rate_limit_per_minute=100_000,
        **overrides,  # type: ignore[arg-type]
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield Server(f"http://127.0.0.1:{port}", fresh_database, settings, viewer, gateway)
    server.should_exit = True
    thread.join(timeout=30)
