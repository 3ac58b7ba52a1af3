"""Errors, security, ingestion and the real `takt api` server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.security import Role, create_token
from api.settings import ApiSettings
from devstack.system import free_port
from tests.api.conftest import ADMIN

EVENT = {
    "timestamp": "2026-01-15T10:15:00Z",
    "worker_id": "W1",
    "workstation_id": "S3",
    "event_type": "working",
    "confidence": 0.93,
    "count": 1,
}
ERROR_KEYS = {"error", "status", "timestamp", "path", "request_id"}


def token(dsn: str, role: Role, gateway_id: str = "gw-test", site_id: str = "site-test") -> str:
    """A token of ``role``; a gateway token is bound to ``gateway_id`` at ``site_id``."""
    binding = {"gateway_id": gateway_id, "site_id": site_id} if role is Role.GATEWAY else {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        return create_token(conn, role, "test", **binding)


def test_ingest_is_idempotent_and_reports_bad_items(client: TestClient, settings: ApiSettings) -> None:
    for _ in range(2):
        r = client.post("/api/events", json=EVENT)
        assert r.status_code == 201 and r.json() == {"message": "Event ingested successfully"}
    bad = {**EVENT, "confidence": "0.9"}
    r = client.post("/api/v1/events/batch", json=[EVENT, bad, {**EVENT, "worker_id": "W2"}])
    body = r.json()
    assert body["success_count"] == 2 and body["total_count"] == 3
    assert body["message"] == "2/3 events ingested successfully"
    assert body["errors"][0]["index"] == 1 and "confidence" in body["errors"][0]["error"]
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM dead_letters WHERE source = 'http'").fetchone() == (1,)


def test_batch_item_with_an_integer_beyond_64_bits_is_dead_lettered(
    client: TestClient, settings: ApiSettings
) -> None:
    r = client.post("/api/events/batch", json=[{**EVENT, "count": 2**70}, {**EVENT, "worker_id": "W9"}])
    assert r.status_code == 200 and r.json()["success_count"] == 1
    assert "count" in r.json()["errors"][0]["error"]
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT payload FROM dead_letters WHERE source = 'http'").fetchone()
    assert row is not None and str(2**70).encode() in bytes(row[0])


def test_errors_have_the_common_format(client: TestClient) -> None:
    r = client.post("/api/events", json={**EVENT, "event_type": "dancing"})
    assert r.status_code == 422
    assert set(r.json()) >= ERROR_KEYS and r.json()["details"][0]["loc"][-1] == "event_type"
    r = client.get("/api/metrics/workstations/NOPE")
    assert r.status_code == 404 and r.json()["path"] == "/api/metrics/workstations/NOPE"
    r = client.get(
        "/api/metrics/factory", params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
    )
    assert r.status_code == 422 and set(r.json()) >= ERROR_KEYS
    r = client.post(
        "/api/events/batch",
        content=b"[" + b" " * 3_000_000 + b"]",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["status"] == 413


def test_roles(settings: ApiSettings) -> None:
    viewer, gateway = token(settings.database_url, Role.VIEWER), token(settings.database_url, Role.GATEWAY)
    supervisor = token(settings.database_url, Role.SUPERVISOR)
    with TestClient(create_app(settings)) as c:
        assert c.get("/api/metrics/factory").status_code == 401
        assert c.get("/api/metrics/factory", headers={"Authorization": "Bearer wrong"}).status_code == 401
        v = {"Authorization": f"Bearer {viewer}"}
        assert c.get("/api/metrics/factory", headers=v).status_code == 200
        assert c.post("/api/events", json=EVENT, headers=v).status_code == 403
        assert c.post("/api/seed", headers=v).status_code == 403
        assert c.get("/api/gateways", headers=v).status_code == 403
        assert c.get("/api/audit/gaps", headers={"Authorization": f"Bearer {supervisor}"}).status_code == 200
        assert c.post("/api/events", json=EVENT, headers={"X-API-Key": gateway}).status_code == 201
        assert c.get("/api/workers", headers={"X-API-Key": gateway}).status_code == 403
        r = c.get("/health")
        assert r.json() == {"status": "healthy"}
        assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Content-Security-Policy"] == "default-src 'self'"


def test_rate_limit(settings: ApiSettings) -> None:
    limited = settings.model_copy(update={"rate_limit_per_minute": 3})
    with TestClient(create_app(limited), headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        remaining = [c.get("/api/workers").headers["X-RateLimit-Remaining"] for _ in range(3)]
        r = c.get("/api/workers")
        health = c.get("/health")
    assert remaining == ["2", "1", "0"]
    assert r.status_code == 429 and r.headers["X-RateLimit-Remaining"] == "0" and r.json()["status"] == 429
    assert health.status_code == 200  # probes are exempt


def test_takt_api_serves_over_http(settings: ApiSettings, mosquitto_server: Any) -> None:
    port = free_port()
    env = {
        **os.environ,
        "TAKT_DATABASE_URL": settings.database_url,
        "TAKT_ADMIN_TOKEN": "subprocess-admin",
        "TAKT_MQTT_URL": f"mqtt://127.0.0.1:{mosquitto_server.port}",
        "TAKT_REFRESH_INTERVAL_S": "0.2",
        "TAKT_MAX_EVENT_AGE_DAYS": str(settings.max_event_age_days),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "takt.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        auth = {"Authorization": "Bearer subprocess-admin"}
        assert httpx.get(f"{base}/health/ready", timeout=5).json()["database"] is True
        events = [
            {**EVENT, "timestamp": f"2026-01-15T10:{m:02d}:00Z", "event_type": k}
            for m, k in ((0, "working"), (6, "idle"), (9, "absent"))
        ]
        assert httpx.post(f"{base}/api/events/batch", json=events, headers=auth, timeout=5).status_code == 200
        # The server's own refresher derives durations in the background.
        for _ in range(100):
            w = httpx.get(f"{base}/api/metrics/workers/W1", headers=auth, timeout=5).json()
            if w["total_idle_time_hours"] > 0:
                break
            time.sleep(0.1)
        assert w["total_active_time_hours"] == pytest.approx(0.1)
        assert w["total_idle_time_hours"] == pytest.approx(0.05)
        assert w["utilization_percentage"] == pytest.approx(66.6667)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_nul_bytes_are_a_client_error(client: TestClient) -> None:
    r = client.get("/api/metrics/workers/W%001")
    assert r.status_code == 422 and set(r.json()) >= ERROR_KEYS


def test_shift_filter_and_planned_breaks(settings: ApiSettings) -> None:
    calendars = {
        "site-1": {
            "timezone": "UTC",
            "shifts": [
                {
                    "name": "day",
                    "start": "08:00",
                    "end": "17:00",
                    "breaks": [{"start": "12:00", "end": "12:30"}],
                },
            ],
        }
    }
    s = ApiSettings(**{**settings.model_dump(), "admin_token": "test-admin-token", "calendars": calendars})
    with TestClient(create_app(s), headers={"Authorization": "Bearer test-admin-token"}) as c:
        # Working 07:00-13:00 as one explicit 6-hour segment.
        body = {**EVENT, "timestamp": "2026-01-15T07:00:00Z", "duration_s": 21600.0}
        assert c.post("/api/events", json=body).status_code == 201
        with psycopg.connect(s.database_url, autocommit=True) as conn:
            from takt.store.rollups import refresh_all

            refresh_all(conn, max_gap_s=600)
        q = {"from": "2026-01-15T00:00:00Z", "to": "2026-01-16T00:00:00Z"}
        whole = c.get("/api/metrics/workers/W1", params=q).json()
        shift = c.get("/api/metrics/workers/W1", params={**q, "shift": "day"}).json()
        assert c.get("/api/metrics/workers/W1", params={**q, "shift": "night"}).status_code == 404
    # The break is never counted; the shift starts at 08:00.
    assert whole["total_active_time_hours"] == pytest.approx(5.5)
    assert shift["total_active_time_hours"] == pytest.approx(4.5)
    assert whole["planned_break_hours"] == pytest.approx(0.5) == shift["planned_break_hours"]


def test_delete_rebuilds_every_hour_the_state_reached(client: TestClient, settings: ApiSettings) -> None:
    from takt.store.rollups import refresh_all

    body = {**EVENT, "timestamp": "2026-01-15T07:30:00Z", "duration_s": 7200.0}
    assert client.post("/api/events", json=body).status_code == 201
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        refresh_all(conn, max_gap_s=600)
        (event_id,) = conn.execute("SELECT event_id FROM events").fetchone()  # type: ignore[misc]
        q = {"from": "2026-01-15T00:00:00Z", "to": "2026-01-16T00:00:00Z"}
        assert client.get("/api/metrics/factory", params=q).json()["total_productive_time_hours"] == 2.0
        assert client.delete(f"/api/events/{event_id}").status_code == 200
        assert client.delete(f"/api/events/{event_id}").status_code == 404
        refresh_all(conn, max_gap_s=600)
        assert client.get("/api/metrics/factory", params=q).json()["total_productive_time_hours"] == 0.0


def test_day_buckets_follow_the_sites_midnights_across_daylight_saving(settings: ApiSettings) -> None:
    """Chicago falls back on 2 Nov 2025: that day lasts 25 h, and day buckets
    start at each local midnight (05:00Z before the change, 06:00Z after)."""
    calendars = {"site-1": {"timezone": "America/Chicago", "shifts": []}}
    s = ApiSettings(**{**settings.model_dump(), "admin_token": "test-admin-token", "calendars": calendars})
    with TestClient(create_app(s), headers={"Authorization": "Bearer test-admin-token"}) as c:
        # Working from 23:00 on 1 Nov to 01:00 on 3 Nov, local time: 27 hours.
        for ts, duration in (("2025-11-02T04:00:00Z", 86400.0), ("2025-11-03T04:00:00Z", 10800.0)):
            body = {**EVENT, "timestamp": ts, "duration_s": duration}
            assert c.post("/api/events", json=body).status_code == 201
        q = {"from": "2025-11-01T05:00:00Z", "to": "2025-11-04T06:00:00Z", "bucket": "day", "id": "W1"}
        points = c.get("/api/metrics/timeseries", params=q).json()
    assert [(p["bucket_start"], p["active_hours"]) for p in points] == [
        ("2025-11-01T05:00:00Z", 1.0),
        ("2025-11-02T05:00:00Z", 25.0),
        ("2025-11-03T06:00:00Z", 1.0),
    ]
