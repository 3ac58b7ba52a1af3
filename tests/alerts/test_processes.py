"""Real `takt api` processes: two never fire the same incident twice; a restart neither loses nor
repeats an open incident."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from devstack.system import free_port
from takt.store.db import upgrade
from tests.alerts.conftest import WebhookReceiver, wait_for
from tests.alerts.test_notify import IDLE_MINUTES, event

ADMIN = "alerts-process-admin"
AUTH = {"Authorization": f"Bearer {ADMIN}"}

pytestmark = pytest.mark.wallclock


class Api:
    def __init__(self, dsn: str, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "TAKT_DATABASE_URL": dsn,
            "TAKT_ADMIN_TOKEN": ADMIN,
            "TAKT_REFRESH_INTERVAL_S": "1",
            "TAKT_DRIFT_CHECK_INTERVAL_S": "0",
            "TAKT_ALERT_INTERVAL_S": "0.2",
            "TAKT_ALERT_SEND_INTERVAL_S": "0.1",
            # A receiver stalled past the timeout gets the POST again (at least once, docs/alerts.md);
            # these tests are about firing once, so a loaded test machine gets a long timeout.
            "TAKT_ALERT_WEBHOOK_TIMEOUT_S": "60",
            "TAKT_ALERT_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
            "TAKT_LOG_LEVEL": "INFO",
            **(extra_env or {}),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "takt.cli", "api", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            try:
                return httpx.get(f"{self.base}/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 60, "the API to start")

    def post(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(self.base + path, json=body, headers=AUTH, timeout=10)

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(self.base + path, params=params, headers=AUTH, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def stop(self) -> str:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=20)
        return out.decode(errors="replace")


@pytest.fixture
def dsn(fresh_database: str) -> str:
    upgrade(fresh_database)
    return fresh_database


@pytest.fixture
def apis(dsn: str) -> Iterator[list[Api]]:
    started: list[Api] = []
    yield started
    for api in started:
        if api.proc.poll() is None:
            api.stop()


def _idle_rule(api: Api, site: str, webhook: WebhookReceiver) -> None:
    body = {
        "kind": "station_idle",
        "site_id": site,
        "station_id": "S1",
        "minutes": IDLE_MINUTES,
        "webhook_url": webhook.url,
    }
    assert api.post("/api/v1/alerts/rules", body).status_code == 201
    now = datetime.now(UTC)
    batch = [event("working", now - timedelta(minutes=2), site), event("idle", now, site)]
    assert api.post("/api/v1/events/batch", batch).status_code == 200


def _incidents(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT incident_id, subject, resolved_at IS NULL FROM alert_incidents ORDER BY 1"
        ).fetchall()


def _notifications(dsn: str) -> list[tuple[Any, ...]]:
    """What the outbox says (for failure messages)."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT notification_id, incident_id, event, status, attempts, reason FROM alert_notifications "
            "ORDER BY 1"
        ).fetchall()


def _rounds_pass(dsn: str, seconds: float) -> None:
    """Let the evaluators run many rounds (0.2 s apart), measured on the database clock."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT pg_sleep(%s)", (seconds,))


def test_two_api_processes_never_fire_the_same_incident_twice(
    dsn: str, site_id: str, webhook: WebhookReceiver, apis: list[Api]
) -> None:
    apis += [Api(dsn), Api(dsn)]
    # Both evaluate every 0.2 s; one holds the round's advisory lock, the other skips it.
    _idle_rule(apis[0], site_id, webhook)
    wait_for(lambda: webhook.events("opened"), 30, "the webhook POST")
    _rounds_pass(dsn, 3)
    assert len(webhook.events("opened")) == 1
    assert len(_incidents(dsn)) == 1
    # Either process answers the same incident.
    assert apis[0].get("/api/v1/alerts") == apis[1].get("/api/v1/alerts")
    assert apis[1].post("/api/v1/events", event("working", datetime.now(UTC), site_id)).status_code == 201
    wait_for(lambda: webhook.events("resolved"), 30, "the resolved notice")
    _rounds_pass(dsn, 3)
    assert len(webhook.events("resolved")) == 1, _notifications(dsn)
    assert len(webhook.events("opened")) == 1
    assert [r[2] for r in _incidents(dsn)] == [False]


def test_restart_during_an_open_incident_neither_loses_nor_repeats_it(
    dsn: str, site_id: str, webhook: WebhookReceiver, apis: list[Api]
) -> None:
    first = Api(dsn)
    apis.append(first)
    _idle_rule(first, site_id, webhook)
    opened = wait_for(lambda: webhook.events("opened"), 30, "the webhook POST")
    incident_id = opened[0].json["incident"]["id"]
    first.stop()

    second = Api(dsn)
    apis.append(second)
    # The condition still holds: the same incident stays open, announced once.
    _rounds_pass(dsn, 3)
    assert len(webhook.events("opened")) == 1
    assert [i["id"] for i in second.get("/api/v1/alerts", status="open")] == [incident_id]
    assert _incidents(dsn) == [(incident_id, "S1", True)]
    # It still ends, once.
    assert second.post("/api/v1/events", event("working", datetime.now(UTC), site_id)).status_code == 201
    resolved = wait_for(lambda: webhook.events("resolved"), 30, "the resolved notice")
    _rounds_pass(dsn, 2)
    assert len(webhook.events("resolved")) == 1
    assert resolved[0].json["incident"]["id"] == incident_id
    assert _incidents(dsn) == [(incident_id, "S1", False)]
