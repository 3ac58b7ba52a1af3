"""Hostile input over HTTP: the same validation as MQTT, per-item rejection, 422 never 500.

Against a real PostgreSQL; the refresher test runs `takt api` as a process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from devstack.system import free_port
from takt.store.rollups import refresh_all
from tests.api.conftest import ADMIN

ERROR_KEYS = {"error", "status", "timestamp", "path", "request_id"}


def _event(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "timestamp": (datetime.now(UTC) - timedelta(minutes=10)).isoformat(),
        "worker_id": "W1",
        "workstation_id": "S1",
        "event_type": "working",
        "confidence": 0.9,
    }
    body.update(fields)
    return body


@pytest.fixture
def strict(settings: ApiSettings) -> Iterator[TestClient]:
    """The API with the default plausibility window (5 minutes ahead, 30 days back)."""
    defaults = ApiSettings(database_url=settings.database_url)
    assert (defaults.max_clock_skew_s, defaults.max_event_age_days) == (300.0, 30.0)
    app = create_app(settings.model_copy(update={"max_clock_skew_s": 300.0, "max_event_age_days": 30.0}))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        yield c


# (what is wrong, the fields that make it so, a word the reason must contain)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("year 1", {"timestamp": "0001-01-01T00:00:00Z"}, "outside the supported range"),
    ("overflows in UTC", {"timestamp": "0001-01-01T00:00:00+01:00"}, "out of range"),
    ("year 9999", {"timestamp": "9999-12-31T23:00:00Z"}, "outside the supported range"),
    ("a day ahead", {"timestamp": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, "future"),
    ("40 days old", {"timestamp": (datetime.now(UTC) - timedelta(days=40)).isoformat()}, "older than"),
    ("naive", {"timestamp": "2026-01-01T00:00:00"}, "timezone"),
    ("epoch integer", {"timestamp": 1_700_000_000}, "not a number"),
    ("epoch string", {"timestamp": "1700000000"}, "ISO 8601"),
    ("bidi override", {"model_version": "m\u202e1"}, "printable"),
    ("control character", {"config_version": "c\x1b[31m"}, "printable"),
]


@pytest.mark.parametrize(("case", "fields", "word"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_single_event_answers_422_with_the_reason(
    strict: TestClient, settings: ApiSettings, case: str, fields: dict[str, Any], word: str
) -> None:
    r = strict.post("/api/v1/events", json=_event(**fields))
    assert r.status_code == 422, r.text
    assert set(r.json()) >= ERROR_KEYS
    assert word in r.text
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)


def test_single_event_outside_the_window_is_dead_lettered(strict: TestClient, settings: ApiSettings) -> None:
    r = strict.post(
        "/api/v1/events", json=_event(timestamp=(datetime.now(UTC) - timedelta(days=31)).isoformat())
    )
    assert r.status_code == 422
    assert strict.post("/api/v1/events", json=_event()).status_code == 201
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute("SELECT source, reason FROM dead_letters").fetchall()
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)
    assert len(rows) == 1 and rows[0][0] == "http" and "older than" in rows[0][1]


def test_each_bad_batch_item_is_rejected_alone(strict: TestClient, settings: ApiSettings) -> None:
    good = [_event(worker_id="W1"), _event(worker_id="W2")]
    items: list[Any] = [good[0], 42, None, "x", []]
    items += [_event(**fields, seq=100 + i) for i, (_, fields, _) in enumerate(BAD)]
    items.append(good[1])
    r = strict.post("/api/v1/events/batch", json=items)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success_count"] == 2 and body["total_count"] == len(items)
    assert [a["index"] for a in body["accepted"]] == [0, len(items) - 1]
    errors = {e["index"]: e for e in body["errors"]}
    assert sorted(errors) == list(range(1, len(items) - 1))
    for i, (_, _, word) in enumerate(BAD):
        error = errors[5 + i]
        assert word in error["error"] and error["seq"] == 100 + i
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (2,)
        letters = conn.execute("SELECT event_index, seq FROM dead_letters ORDER BY event_index").fetchall()
    assert [i for i, _ in letters] == sorted(errors)
    assert [s for _, s in letters][4:] == [100 + i for i in range(len(BAD))]


def test_an_item_quoting_a_nul_character_is_dead_lettered_alone(
    strict: TestClient, settings: ApiSettings
) -> None:
    """Found by the fuzzer: a reason that quotes a NUL key made the dead-letter insert fail the batch."""
    r = strict.post("/api/v1/events/batch", json=[_event(worker_id="W1"), {"\x00": None}])
    assert r.status_code == 200, r.text
    assert r.json()["success_count"] == 1
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)
        reasons = [str(row[0]) for row in conn.execute("SELECT reason FROM dead_letters")]
    assert len(reasons) == 1 and "\\x00" in reasons[0]


EXTREMES = [
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:00:00-05:00",
    "2026-01-01T00:00:00",  # naive: one rule everywhere, a UTC offset is required
    "1700000000",
    "-1",
]
ROUTES = [
    "/api/v1/metrics/factory",
    "/api/v1/metrics/workers",
    "/api/v1/metrics/workstations",
    "/api/v1/metrics/models",
    "/api/v1/metrics/timeseries",
    "/api/v1/models/confidence",
    "/api/v1/models/samples",
    "/api/timeline?worker_id=W1",
    "/api/stations/S1/workers",
    "/api/events/recent",
]


@pytest.mark.parametrize("value", EXTREMES)
def test_extreme_query_times_answer_422(client: TestClient, value: str) -> None:
    failures = []
    for route in ROUTES:
        for name in ("from", "to"):
            r = client.get(route, params={name: value})
            if r.status_code != 422 or not set(r.json()) >= ERROR_KEYS:
                failures.append(f"{route} {name}={value}: {r.status_code} {r.text[:120]}")
    for name in ("recent_from", "recent_to", "baseline_from", "baseline_to"):
        r = client.get("/api/v1/models/drift", params={"station_id": "S1", name: value})
        if r.status_code != 422:
            failures.append(f"drift {name}={value}: {r.status_code} {r.text[:120]}")
    assert failures == []


def test_stray_stored_times_do_not_break_the_default_window(
    client: TestClient, settings: ApiSettings
) -> None:
    """Events stored before the checks existed (written directly here) leave metrics answering."""
    with psycopg.connect(settings.database_url, autocommit=True, options="-c TimeZone=UTC") as conn:
        for ts in ("9999-12-31T23:00:00Z", "0001-01-01T00:00:00Z"):
            conn.execute(
                "INSERT INTO events (event_id, ts, worker_id, station_id, event_type, confidence) "
                "VALUES (%s, %s::timestamptz, 'W1', 'S1', 'working', 0.9)",
                (uuid.uuid4(), ts),
            )
        conn.execute("UPDATE rollup_meta SET max_duration_s = 600")
    for route in ROUTES[:5]:
        r = client.get(route)
        assert r.status_code in (200, 422), (route, r.status_code, r.text[:200])
        assert r.status_code == 200 or "window" in r.text


def test_takt_api_refresher_survives_a_poisoned_queue(settings: ApiSettings, mosquitto_server: Any) -> None:
    """The issue's HTTP case: a year-0001 invalidation used to kill the API's refresher for good."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for ts in ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z"):
            conn.execute(
                "INSERT INTO event_invalidations (worker_id, station_id, min_ts, max_ts) "
                "VALUES ('W-old', 'S-old', %s::timestamptz, %s::timestamptz)",
                (ts, ts),
            )
    port = free_port()
    env = {
        **os.environ,
        "TAKT_DATABASE_URL": settings.database_url,
        "TAKT_ADMIN_TOKEN": "subprocess-admin",
        "TAKT_MQTT_URL": f"mqtt://127.0.0.1:{mosquitto_server.port}",
        "TAKT_REFRESH_INTERVAL_S": "0.2",
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
        now = datetime.now(UTC).replace(microsecond=0)
        events = [
            _event(worker_id="W7", timestamp=(now - timedelta(minutes=m)).isoformat(), event_type=k)
            for m, k in ((20, "working"), (14, "idle"), (11, "absent"))
        ]
        r = httpx.post(f"{base}/api/v1/events/batch", json=events, headers=auth, timeout=5)
        assert r.status_code == 200 and r.json()["success_count"] == 3
        window = {"from": (now - timedelta(hours=1)).isoformat(), "to": now.isoformat()}
        idle = 0.0
        for _ in range(100):
            w = httpx.get(f"{base}/api/v1/metrics/workers/W7", params=window, headers=auth, timeout=5).json()
            idle = w.get("total_idle_time_hours", 0.0)
            if idle > 0:
                break
            time.sleep(0.1)
        assert idle == pytest.approx(0.05), "the refresher never derived the durations"
        text = httpx.get(f"{base}/metrics", headers=auth, timeout=5).text.splitlines()
        assert 'takt_background_task_alive{task="rollup-refresher"} 1.0' in text
        assert 'takt_background_quarantined_total{task="rollup-refresher"} 2.0' in text
        assert "takt_invalidations_quarantined 2.0" in text
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    with psycopg.connect(settings.database_url, autocommit=True, options="-c TimeZone=UTC") as conn:
        assert refresh_all(conn, max_gap_s=600) == 0
