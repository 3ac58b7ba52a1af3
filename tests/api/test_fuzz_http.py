"""Fuzzing HTTP ingestion and every metrics/timeline/models query parameter: never a 500.

A real PostgreSQL behind the ASGI app, the default plausibility window, a fixed seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.settings import ApiSettings
from takt.contract.codec import raw_json
from tests.api.conftest import ADMIN
from tests.fuzz import FUZZ, events, items, json_value, text, time_text

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def fuzz_client(postgres_server: Any) -> Iterator[TestClient]:
    dsn = postgres_server.create_database("fuzz_http", exist_ok=True)
    from takt.store.db import upgrade

    upgrade(dsn)
    app = create_app(
        ApiSettings(database_url=dsn, admin_token=ADMIN, refresh_interval_s=0, rate_limit_per_minute=10**9)
    )
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        assert client.post("/api/v1/seed").status_code == 200
        yield client


@settings(FUZZ, max_examples=120)
@given(event=events | json_value)
def test_single_event_answers_201_or_422(fuzz_client: TestClient, event: Any) -> None:
    r = fuzz_client.post("/api/v1/events", content=raw_json(event), headers=JSON)
    assert r.status_code in (201, 422), r.text[:300]


@settings(FUZZ, max_examples=80)
@given(batch=st.lists(items, max_size=8))
def test_batch_reports_every_item_once(fuzz_client: TestClient, batch: list[Any]) -> None:
    r = fuzz_client.post("/api/v1/events/batch", content=raw_json(batch), headers=JSON)
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    indexes = sorted([a["index"] for a in body["accepted"]] + [e["index"] for e in body["errors"]])
    assert indexes == list(range(len(batch)))


# Every route with a query parameter, and the values each parameter may take
# (the dates from the full range of datetime, with any offset, and junk).
ROUTES: dict[str, dict[str, st.SearchStrategy[Any]]] = {}
_window = {"from": time_text, "to": time_text, "site_id": text, "shift": text}
for route in ("factory", "workers", "workers/W1", "workstations", "workstations/S1", "models"):
    ROUTES[f"/api/v1/metrics/{route}"] = _window
ROUTES["/api/v1/metrics/workstations/S1/cycle-time"] = _window
ROUTES["/api/v1/metrics/timeseries"] = {
    **_window,
    "bucket": st.sampled_from(["hour", "day"]) | text,
    "by": st.sampled_from(["worker", "workstation"]) | text,
    "id": text,
}
ROUTES["/api/v1/models/confidence"] = {
    "from": time_text,
    "to": time_text,
    "timezone": st.sampled_from(["UTC", "Europe/Berlin", "Pacific/Kiritimati"]) | text,
    "group": st.sampled_from(["station_day", "model"]) | text,
    "station_id": text,
    "model_version": text,
}
ROUTES["/api/v1/models/drift"] = {
    "station_id": st.sampled_from(["S1"]) | text,
    "camera_id": text,
    "shadow": st.sampled_from(["true", "false"]) | text,
    **{k: time_text for k in ("recent_from", "recent_to", "baseline_from", "baseline_to")},
}
ROUTES["/api/v1/models/samples"] = {
    "from": time_text,
    "to": time_text,
    "low_confidence_below": st.floats().map(str) | text,
    "min_overlap_s": st.floats().map(str) | text,
    "limit": st.integers().map(str) | text,
    "format": st.sampled_from(["jsonl", "csv"]) | text,
}
ROUTES["/api/v1/models/drift/flags"] = {"active": st.sampled_from(["true", "false"]) | text}
_dash = {"from": time_text, "to": time_text, "site_id": text}
ROUTES["/api/timeline"] = {**_dash, "worker_id": st.sampled_from(["W1"]) | text, "station_id": text}
ROUTES["/api/stations/S1/workers"] = _dash
ROUTES["/api/events/recent"] = {**_dash, "worker_id": text, "limit": st.integers().map(str) | text}
ROUTES["/api/now"] = {"site_id": text}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    route = draw(st.sampled_from(sorted(ROUTES)))
    params = ROUTES[route]
    names = draw(st.lists(st.sampled_from(sorted(params)), unique=True, max_size=len(params)))
    return route, {name: str(draw(params[name])) for name in names}


@settings(FUZZ, max_examples=400)
@given(request=requests())
def test_no_query_parameter_makes_a_500(fuzz_client: TestClient, request: tuple[str, dict[str, str]]) -> None:
    route, params = request
    r = fuzz_client.get(route, params=params)
    assert r.status_code < 500, f"{route} {params}: {r.status_code} {r.text[:300]}"


def test_fuzzed_ingestion_left_the_database_consistent(fuzz_client: TestClient) -> None:
    dsn = fuzz_client.app.state.settings.database_url  # type: ignore[attr-defined]
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT min(ts), max(ts) FROM events").fetchone()
    assert row is not None and row[0] is not None and row[0].year >= 1970 and row[1].year < 9000
