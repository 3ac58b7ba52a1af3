"""Targets with effective dates and history, lines, and the availability/performance figures built on them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.security import Role, create_token
from api.settings import ApiSettings, SiteCalendar
from takt.store.rollups import refresh_all
from tests.api.conftest import ADMIN

# Fixed past dates; the calendar below puts a shift 08:00-17:00 UTC with a break 12:00-12:30 on them.
DAY = datetime(2026, 3, 2, tzinfo=UTC)
CALENDAR = {
    "site-a": {
        "timezone": "UTC",
        "shifts": [
            {"name": "day", "start": "08:00", "end": "17:00", "breaks": [{"start": "12:00", "end": "12:30"}]}
        ],
    }
}


@pytest.fixture
def cal_client(settings: ApiSettings) -> Iterator[TestClient]:
    s = settings.model_copy(
        update={"calendars": {k: SiteCalendar.model_validate(v) for k, v in CALENDAR.items()}}
    )
    with TestClient(create_app(s), headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        yield c


def _at(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


def _state(hour: float, worker: str, station: str, kind: str, seconds: float) -> dict[str, Any]:
    return {"timestamp": _at(hour).isoformat(), "worker_id": worker, "station_id": station,
            "event_type": kind, "confidence": 0.9, "duration_s": seconds, "site_id": "site-a"}  # fmt: skip


def _units(hour: float, station: str, n: int) -> dict[str, Any]:
    return {"timestamp": _at(hour).isoformat(), "worker_id": "w1", "station_id": station,
            "event_type": "product_count", "confidence": 0.9, "count": n, "site_id": "site-a"}  # fmt: skip


def _load(client: TestClient, settings: ApiSettings, events: list[dict[str, Any]]) -> None:
    r = client.post("/api/events/batch", json=events)
    assert r.status_code == 200 and r.json()["success_count"] == len(events), r.text
    with psycopg.connect(settings.database_url) as conn:
        refresh_all(conn, max_gap_s=settings.max_state_gap_s)


def test_target_history_and_the_one_in_force(client: TestClient, settings: ApiSettings) -> None:
    _load(client, settings, [_units(9, "st-1", 1)])
    first = client.put(
        "/api/v1/targets/stations/st-1",
        json={"ideal_cycle_time_s": 60, "effective_from": _at(0).isoformat()},
    )
    assert first.status_code == 200, first.text
    second = client.put(
        "/api/v1/targets/stations/st-1",
        json={"target_units_per_hour": 40, "effective_from": _at(10).isoformat()},
    )
    body = second.json()
    assert [c["ideal_cycle_time_s"] for c in body["history"]] == [60, 90]
    assert body["current"]["ideal_cycle_time_s"] == 90 and body["current"]["set_by"] == "admin"
    earlier = client.get("/api/v1/targets/stations/st-1", params={"at": _at(9).isoformat()}).json()
    assert earlier["current"]["ideal_cycle_time_s"] == 60
    before = client.get("/api/v1/targets/stations/st-1", params={"at": _at(-1).isoformat()}).json()
    assert before["current"] is None and len(before["history"]) == 2
    # A SKU's targets are kept apart from the station-wide ones.
    client.put("/api/v1/targets/stations/st-1", json={"ideal_cycle_time_s": 30, "sku": "red"})
    sku = client.get("/api/v1/targets/stations/st-1", params={"sku": "red"}).json()
    assert [c["ideal_cycle_time_s"] for c in sku["history"]] == [30]
    assert len(client.get("/api/v1/targets/stations/st-1").json()["history"]) == 2


def test_bad_targets_and_roles(client: TestClient, settings: ApiSettings) -> None:
    _load(client, settings, [_units(9, "st-1", 1)])
    naive = "2026-03-02T08:00:00"
    bodies: list[dict[str, Any]] = [{}, {"ideal_cycle_time_s": 0}, {"ideal_cycle_time_s": "x"}]
    bodies += [
        {"ideal_cycle_time_s": 60, "target_units_per_hour": 1},
        {"ideal_cycle_time_s": 60, "effective_from": naive},
    ]
    for body in bodies:
        r = client.put("/api/v1/targets/stations/st-1", json=body)
        assert r.status_code == 422, (body, r.text)
    assert client.put("/api/v1/targets/stations/nope", json={"ideal_cycle_time_s": 60}).status_code == 404
    assert client.get("/api/v1/targets/stations/st-1", params={"site_id": "site-b"}).status_code == 404
    assert client.get("/api/v1/targets/stations/st-1", params={"site_id": "site-a"}).status_code == 200
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        viewer = create_token(conn, Role.VIEWER)
        supervisor = create_token(conn, Role.SUPERVISOR)
    put = {"json": {"ideal_cycle_time_s": 60}}
    r = client.put("/api/v1/targets/stations/st-1", headers={"Authorization": f"Bearer {viewer}"}, **put)
    assert r.status_code == 403
    assert (
        client.get("/api/v1/targets/stations/st-1", headers={"Authorization": f"Bearer {viewer}"}).status_code
        == 200
    )
    r = client.put("/api/v1/targets/stations/st-1", headers={"Authorization": f"Bearer {supervisor}"}, **put)
    assert r.status_code == 200 and r.json()["current"]["set_by"] == "supervisor"
    line = {"site_id": "site-a", "stations": ["st-1"]}
    r = client.put("/api/v1/lines/l1", headers={"Authorization": f"Bearer {viewer}"}, json=line)
    assert r.status_code == 403


def test_lines_keep_their_order_and_site(client: TestClient, settings: ApiSettings) -> None:
    _load(client, settings, [_units(9, s, 1) for s in ("st-1", "st-2", "st-3")])
    r = client.put("/api/v1/lines/assembly", json={"site_id": "site-a", "stations": ["st-3", "st-1", "st-2"]})
    assert r.status_code == 200, r.text
    assert client.get("/api/v1/lines/assembly").json()["stations"] == ["st-3", "st-1", "st-2"]
    client.put(
        "/api/v1/lines/assembly", json={"site_id": "site-a", "name": "Assembly", "stations": ["st-2", "st-1"]}
    )
    line = client.get("/api/v1/lines/assembly", params={"site_id": "site-a"}).json()
    assert (line["name"], line["stations"]) == ("Assembly", ["st-2", "st-1"])
    assert client.get("/api/v1/lines/assembly", params={"site_id": "site-b"}).status_code == 404
    assert [x["line_id"] for x in client.get("/api/v1/lines", params={"site_id": "site-a"}).json()] == [
        "assembly"
    ]
    assert client.get("/api/v1/lines", params={"site_id": "site-b"}).json() == []
    bad = client.put("/api/v1/lines/x", json={"site_id": "site-a", "stations": ["st-1", "st-1"]})
    assert bad.status_code == 422
    assert client.put("/api/v1/lines/x", json={"site_id": "site-a", "stations": ["zz"]}).status_code == 404


def test_availability_performance_target_units(cal_client: TestClient, settings: ApiSettings) -> None:
    client = cal_client
    # st-1 works 09:00-11:00 and 13:00-14:00 (3 h) and makes 100 units before 10:00 and 50 after.
    events = [_state(9, "w1", "st-1", "working", 7200), _state(13, "w1", "st-1", "working", 3600),
              _state(11, "w1", "st-1", "idle", 3600), _units(9.5, "st-1", 100), _units(10.5, "st-1", 50),
              _state(9, "w2", "st-2", "working", 1800)]  # fmt: skip
    _load(client, settings, events)
    client.put(
        "/api/v1/targets/stations/st-1", json={"ideal_cycle_time_s": 60, "effective_from": _at(0).isoformat()}
    )
    client.put(
        "/api/v1/targets/stations/st-1",
        json={"ideal_cycle_time_s": 90, "effective_from": _at(10).isoformat()},
    )
    # The site's calendar applies with ?site_id= (or the default site, TAKT_SITE_ID).
    q = {"from": _at(0).isoformat(), "to": _at(24).isoformat(), "site_id": "site-a"}
    got = {s["station_id"]: s for s in client.get("/api/metrics/workstations", params=q).json()}
    st1 = got["st-1"]
    # Planned time: 08:00-17:00 minus 12:00-12:30 = 8.5 h; 2 h of it at 60 s/unit, 6.5 h at 90 s/unit.
    assert st1["target_units"] == pytest.approx(2 * 60 + 6.5 * 40)
    assert st1["availability_percentage"] == pytest.approx(3 / 8.5 * 100, abs=1e-4)
    assert st1["performance_percentage"] == pytest.approx((100 * 60 + 50 * 90) / (3 * 3600) * 100, abs=1e-4)
    assert st1["quality_percentage"] is None and st1["oee_percentage"] is None
    # No target: availability only.
    st2 = got["st-2"]
    assert st2["target_units"] is None and st2["performance_percentage"] is None
    assert st2["availability_percentage"] == pytest.approx(0.5 / 8.5 * 100, abs=1e-4)
    # One station's route gives the same figures; the shift filter gives the same planned time here.
    one = client.get(
        "/api/metrics/workstations/st-1", params={**q, "shift": "day", "site_id": "site-a"}
    ).json()
    assert one["target_units"] == st1["target_units"]
    assert one["performance_percentage"] == st1["performance_percentage"]
    # The factory sums over the stations with a target (st-1 only).
    factory = client.get("/api/metrics/factory", params=q).json()["targets"]
    assert factory["target_units"] == st1["target_units"]
    assert factory["planned_production_hours"] == 8.5
    assert factory["availability_percentage"] == st1["availability_percentage"]
    # A window before any target: no target figures at all.
    early = {"from": (DAY - timedelta(days=1)).isoformat(), "to": DAY.isoformat()}
    assert client.get("/api/metrics/factory", params=early).json()["targets"] is None


def test_cli_sets_and_shows_targets(
    client: TestClient, settings: ApiSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from takt.cli import main

    _load(client, settings, [_units(9, "st-1", 1)])
    monkeypatch.setenv("TAKT_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    r = runner.invoke(main, ["api", "targets", "set", "st-1", "--rate", "30", "--from", _at(0).isoformat()])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["api", "targets", "set", "st-1", "--cycle-time", "0"])
    assert r.exit_code == 2 and "greater than 0" in r.output
    assert runner.invoke(main, ["api", "targets", "set", "nope", "--cycle-time", "5"]).exit_code == 1
    shown = runner.invoke(main, ["api", "targets", "show", "st-1"])
    assert shown.exit_code == 0 and "*  2026-03-02T00:00:00+00:00" in shown.output and "120" in shown.output
    api = client.get("/api/v1/targets/stations/st-1").json()
    assert api["current"]["ideal_cycle_time_s"] == 120 and api["current"]["set_by"] == "cli"


def test_http_ingestion_stores_rejected_and_sku(client: TestClient, settings: ApiSettings) -> None:
    r = client.post("/api/events", json={**_units(9, "st-1", 4), "rejected": 1, "sku": "red"})
    assert r.status_code == 201, r.text
    bad = client.post("/api/events", json={**_units(9, "st-1", 4), "rejected": 5})
    assert bad.status_code == 422 and "exceeds count" in bad.text
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT count, rejected, sku FROM events").fetchall() == [(4, 1, "red")]
