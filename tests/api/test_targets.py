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
    # No event reports rejected: every unit counts as good (docs/metrics.md, "Units, rejects").
    assert st1["quality_percentage"] == 100 and st1["rejected_units"] == 0
    assert st1["quality_reported_percentage"] == 0
    expected_oee = st1["availability_percentage"] * st1["performance_percentage"] / 100
    assert st1["oee_percentage"] == pytest.approx(expected_oee, abs=1e-3)
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
    # Another site's factory counts its own stations' targets only (st-1 is at site-a).
    assert client.get("/api/metrics/factory", params={**q, "site_id": "site-b"}).json()["targets"] is None
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


def _scenario(client: TestClient, settings: ApiSettings) -> None:
    """st-1: works 09-11 and 13-14, 100 units at 09:30 and 50 at 10:30; 60 s/unit from 00:00, 90 s from 10:00.
    st-2: works 09:00-09:30, one unit at 09:10 and one at 09:20 (no target)."""
    events = [_state(9, "w1", "st-1", "working", 7200), _state(13, "w1", "st-1", "working", 3600),
              _units(9.5, "st-1", 100), _units(10.5, "st-1", 50), _state(9, "w2", "st-2", "working", 1800),
              _units(9 + 10 / 60, "st-2", 1), _units(9 + 20 / 60, "st-2", 1)]  # fmt: skip
    _load(client, settings, events)
    for hour, ict in ((0, 60), (10, 90)):
        r = client.put(
            "/api/v1/targets/stations/st-1",
            json={"ideal_cycle_time_s": ict, "effective_from": _at(hour).isoformat()},
        )
        assert r.status_code == 200
    assert (
        client.put("/api/v1/lines/l1", json={"site_id": "site-a", "stations": ["st-2", "st-1"]}).status_code
        == 200
    )


def test_hour_by_hour_board(cal_client: TestClient, settings: ApiSettings) -> None:
    _scenario(cal_client, settings)
    q = {"from": _at(8).isoformat(), "to": _at(17).isoformat(), "site_id": "site-a"}
    board = cal_client.get("/api/v1/metrics/hour-by-hour", params={**q, "station_id": "st-1"}).json()
    hours = board["hours"]
    assert [h["hour_start"][11:16] for h in hours] == [f"{h:02d}:00" for h in range(8, 17)]
    assert [h["planned_minutes"] for h in hours] == [60, 60, 60, 60, 30, 60, 60, 60, 60]
    assert [h["target_units"] for h in hours] == [60, 60, 40, 40, 20, 40, 40, 40, 40]
    assert [h["actual_units"] for h in hours] == [0, 100, 50, 0, 0, 0, 0, 0, 0]
    assert [h["cumulative_gap"] for h in hours][:3] == [-60, -20, -10]
    assert hours[-1]["cumulative_target"] == 380 and hours[-1]["cumulative_actual"] == 150
    # A line's board counts its last station, st-1.
    line = cal_client.get("/api/v1/metrics/hour-by-hour", params={**q, "line_id": "l1"}).json()
    assert line["station_id"] == "st-1" and line["hours"] == hours
    # st-2 has no target: actual units only.
    st2 = cal_client.get("/api/v1/metrics/hour-by-hour", params={**q, "station_id": "st-2"}).json()["hours"]
    assert st2[1]["actual_units"] == 2 and all(h["target_units"] is None for h in st2)
    assert cal_client.get("/api/v1/metrics/hour-by-hour", params=q).status_code == 422
    other = {**q, "site_id": "site-b", "station_id": "st-1"}
    assert cal_client.get("/api/v1/metrics/hour-by-hour", params=other).status_code == 404


def test_line_view_names_the_bottleneck(cal_client: TestClient, settings: ApiSettings) -> None:
    _scenario(cal_client, settings)
    q = {"from": _at(0).isoformat(), "to": _at(24).isoformat(), "site_id": "site-a"}
    view = cal_client.get("/api/v1/metrics/lines/l1", params=q).json()
    assert [s["station_id"] for s in view["stations"]] == ["st-2", "st-1"]
    st2, st1 = view["stations"]
    assert (st2["median_cycle_time_s"], st1["median_cycle_time_s"]) == (600, 3600)
    assert (st2["total_units_produced"], st1["total_units_produced"]) == (2, 150)
    assert st1["units_per_working_hour"] == 50 and st1["working_hours"] == 3
    assert view["bottleneck_station_id"] == "st-1"
    # The line sums before dividing: availability over both stations' planned time.
    assert view["targets"]["availability_percentage"] == pytest.approx(3.5 / 17 * 100, abs=1e-4)
    assert view["targets"]["target_units"] == 380
    assert cal_client.get("/api/v1/metrics/lines/l1", params={**q, "site_id": "site-b"}).status_code == 404


def test_loss_reasons_tags_and_pareto(cal_client: TestClient, settings: ApiSettings) -> None:
    client = cal_client
    events = [_state(9, "w1", "st-1", "working", 7200), _state(11, "w1", "st-1", "idle", 3600),
              _state(14, "w1", "st-1", "absent", 3600)]  # fmt: skip
    _load(client, settings, events)
    reasons = {}
    for code, label in (("changeover", "Changeover"), ("material", "Waiting for material")):
        r = client.post("/api/v1/reasons", json={"site_id": "site-a", "code": code, "label": label})
        assert r.status_code == 201, r.text
        reasons[code] = r.json()["reason_id"]
    again = client.post("/api/v1/reasons", json={"site_id": "site-a", "code": "material", "label": "x"})
    assert again.status_code == 409
    listed = client.get("/api/v1/reasons", params={"site_id": "site-a"}).json()
    assert [r["code"] for r in listed["reasons"]] == ["changeover", "material"]
    assert listed["untagged_threshold_s"] == 300
    client.put("/api/v1/reasons/settings/site-a", json={"untagged_threshold_s": 120})
    assert client.get("/api/v1/reasons", params={"site_id": "site-a"}).json()["untagged_threshold_s"] == 120

    def tag(a: float, b: float, code: str) -> Any:
        body = {
            "station_id": "st-1",
            "from": _at(a).isoformat(),
            "to": _at(b).isoformat(),
            "reason_id": reasons[code],
        }
        return client.post("/api/v1/loss-tags", json=body)

    first = tag(11, 11.5, "changeover")
    assert first.status_code == 201, first.text
    assert first.json()["tagged_by"] == "admin" and first.json()["from"].startswith("2026-03-02T11:00")
    assert tag(14, 15, "material").status_code == 201
    assert tag(11.25, 12, "material").status_code == 409  # overlaps the changeover
    assert tag(12, 11, "material").status_code == 422
    q = {"from": _at(8).isoformat(), "to": _at(17).isoformat(), "site_id": "site-a", "station_id": "st-1"}
    pareto = client.get("/api/v1/metrics/losses", params=q).json()
    assert pareto["lost_hours"] == 2 and pareto["planned_break_hours"] == 0.5
    assert [(r["code"], r["lost_hours"], r["share_percentage"]) for r in pareto["rows"]] == [
        ("material", 1, 50), ("changeover", 0.5, 25), ("untagged", 0.5, 25)
    ]  # fmt: skip
    # A late event (work at 11:15-11:20) re-derives the station's time: the tag stays, its loss shrinks.
    _load(client, settings, [_state(11.25, "w2", "st-1", "working", 300)])
    later = client.get("/api/v1/metrics/losses", params=q).json()
    rows = {r["code"]: r["lost_hours"] for r in later["rows"]}
    assert rows["changeover"] == round(0.5 - 300 / 3600, 4) and rows["material"] == 1
    tags = client.get(
        "/api/v1/loss-tags", params={"from": q["from"], "to": q["to"], "station_id": "st-1"}
    ).json()
    assert [t["reason_code"] for t in tags] == ["changeover", "material"]
    # The whole site: the same, since st-1 is its only station with time.
    site = client.get(
        "/api/v1/metrics/losses", params={k: v for k, v in q.items() if k != "station_id"}
    ).json()
    assert site["stations"] == ["st-1"] and site["lost_hours"] == later["lost_hours"]


def test_metrics_answer_csv(cal_client: TestClient, settings: ApiSettings) -> None:
    import csv
    import io

    _scenario(cal_client, settings)
    q = {"from": _at(8).isoformat(), "to": _at(17).isoformat(), "site_id": "site-a"}

    def table(r: Any) -> list[dict[str, str]]:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
        return list(csv.DictReader(io.StringIO(r.text)))

    board_q = {**q, "station_id": "st-1"}
    board = cal_client.get("/api/v1/metrics/hour-by-hour", params=board_q).json()
    # The JSON answer was just cached: the same query asking for CSV by Accept gets CSV, not the cached JSON.
    got = table(
        cal_client.get("/api/v1/metrics/hour-by-hour", params=board_q, headers={"Accept": "text/csv"})
    )
    assert [float(r["target_units"]) for r in got] == [h["target_units"] for h in board["hours"]]
    assert {r["station_id"] for r in got} == {"st-1"}
    assert (
        cal_client.get("/api/v1/metrics/hour-by-hour", params=board_q)
        .headers["content-type"]
        .startswith("application/json")
    )
    stations = cal_client.get("/api/v1/metrics/workstations", params=q).json()
    rows = table(cal_client.get("/api/v1/metrics/workstations", params={**q, "format": "csv"}))
    assert [r["station_id"] for r in rows] == [s["station_id"] for s in stations]
    assert [r["performance_percentage"] for r in rows] == [
        "" if s["performance_percentage"] is None else str(s["performance_percentage"]) for s in stations
    ]
    factory = table(cal_client.get("/api/v1/metrics/factory", params={**q, "format": "csv"}))
    assert len(factory) == 1 and float(factory[0]["targets.target_units"]) == 380
    series = table(
        cal_client.get("/api/v1/metrics/timeseries", params={**q, "format": "csv", "by": "workstation"})
    )
    assert {r["id"] for r in series} == {"st-1", "st-2"}
    line = table(cal_client.get("/api/v1/metrics/lines/l1", params={**q, "format": "csv"}))
    assert [r["station_id"] for r in line] == ["st-2", "st-1"] and {r["line_id"] for r in line} == {"l1"}


def test_csv_cells_never_run_as_formulas() -> None:
    from api.csv_export import to_csv

    text = to_csv([{"label": "=HYPERLINK(1)", "n": -3}, {"label": "ok", "n": None}])
    assert text.splitlines() == ["label,n", "'=HYPERLINK(1),-3", "ok,"]


def test_demo_lines_have_targets_and_tagged_losses(client: TestClient, settings: ApiSettings) -> None:
    from devstack.demo import (
        DEMO_SITE,
        LINE_CYCLE_S,
        NORMAL_CYCLE_S,
        register_demo_names,
        register_demo_targets,
    )

    register_demo_names(settings.database_url)
    for _ in range(2):  # a repeat keeps what is there
        register_demo_targets(settings.database_url, DAY)
    lines = client.get("/api/v1/lines", params={"site_id": DEMO_SITE}).json()
    assert [(x["line_id"], x["stations"]) for x in lines] == [
        (f"line-{n}", [f"line{n}-st-1", f"line{n}-st-2"]) for n in (1, 2, 3)
    ]
    at = {"at": DAY.isoformat()}
    for n in (1, 2, 3):
        target = client.get(f"/api/v1/targets/stations/line{n}-st-2", params=at).json()
        assert len(target["history"]) == 1
        assert target["current"]["ideal_cycle_time_s"] == LINE_CYCLE_S.get(n, NORMAL_CYCLE_S)[0]
    reasons = client.get("/api/v1/reasons", params={"site_id": DEMO_SITE}).json()["reasons"]
    assert {r["code"] for r in reasons} >= {"startup", "changeover"}
    window = {"from": DAY.isoformat(), "to": (DAY + timedelta(hours=1)).isoformat(), "site_id": DEMO_SITE}
    tags = client.get("/api/v1/loss-tags", params=window).json()
    assert len(tags) == 6 and {t["reason_code"] for t in tags} == {"startup"}


def test_shift_report_page(cal_client: TestClient, settings: ApiSettings) -> None:
    from html.parser import HTMLParser

    _scenario(cal_client, settings)
    reason = cal_client.post(
        "/api/v1/reasons", json={"site_id": "site-a", "code": "jam", "label": "<b>Jam</b>"}
    )
    body = {"station_id": "st-1", "from": _at(11).isoformat(), "to": _at(12).isoformat(),
            "reason_id": reason.json()["reason_id"]}  # fmt: skip
    assert cal_client.post("/api/v1/loss-tags", json=body).status_code == 201
    q = {"from": _at(8).isoformat(), "to": _at(17).isoformat(), "site_id": "site-a", "shift": "day"}
    r = cal_client.get("/api/v1/reports/shift", params=q)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")

    class Tables(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tables: dict[str, list[list[str]]] = {}
            self.caption: str | None = None
            self.where = ""

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            if tag == "caption":
                self.where = "caption"
                self.caption = ""
            elif tag == "tr" and self.caption is not None:
                self.tables.setdefault(self.caption, []).append([])
            elif tag in ("td", "th"):
                self.where = "cell"
                self.tables[self.caption or ""][-1].append("")

        def handle_endtag(self, tag: str) -> None:
            self.where = ""

        def handle_data(self, data: str) -> None:
            if self.where == "caption":
                self.caption = (self.caption or "") + data
            elif self.where == "cell":
                self.tables[self.caption or ""][-1][-1] += data

    page = Tables()
    page.feed(r.text)
    stations = {row[0]: row for row in page.tables["Stations"][1:]}
    api = {s["station_id"]: s for s in cal_client.get("/api/v1/metrics/workstations", params=q).json()}
    assert stations["st-1"][1] == str(api["st-1"]["total_units_produced"])
    assert stations["st-1"][2] == f"{api['st-1']['target_units']:,.1f}" == "380.0"
    board = next(rows for caption, rows in page.tables.items() if caption.startswith("Hour by hour: line l1"))
    assert [row[2] for row in board[1:]] == ["0", "100", "50", "0", "0", "0", "0", "0", "0"]
    losses = next(rows for caption, rows in page.tables.items() if caption.startswith("Top losses"))
    assert losses[1][0] == "<b>Jam</b>"  # shown as text, never as markup
    assert "<b>Jam</b>" not in r.text
    assert (
        cal_client.get(
            "/api/v1/reports/shift", params=q, headers={"Authorization": "Bearer nope"}
        ).status_code
        == 401
    )


@pytest.mark.wallclock
@pytest.mark.parametrize("start_hour", [9.5, 20.5])  # the demo's shift inside the day, and across midnight
def test_demo_targets_count_the_demos_planned_time_only(settings: ApiSettings, start_hour: float) -> None:
    """The wallboard's target (units since the site's midnight) counts planned time from the demo's
    start, less its planned break: never the hours before it (issue 17, "target 2,516" vs 2 units)."""
    from api.metrics.calendar import planned
    from api.routers.andon import targets
    from devstack.demo import DEMO_SITE, LINE_CYCLE_S, NORMAL_CYCLE_S, demo_calendar, register_demo_names

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today + timedelta(hours=start_hour, seconds=17)
    register_demo_names(settings.database_url)
    # An earlier run's targets, a week ago: this run replaces the demo's own rows.
    register_demo_targets_at(settings.database_url, start - timedelta(days=7))
    register_demo_targets_at(settings.database_url, start)
    calendar = SiteCalendar.model_validate(demo_calendar(start)[DEMO_SITE])
    rate = sum(3600 / LINE_CYCLE_S.get(n, NORMAL_CYCLE_S)[0] for n in (1, 2, 3)) * 2  # units/h, 6 stations
    with psycopg.connect(settings.database_url) as conn:
        for minutes, planned_min in ((0, 0), (30, 30), (50, 45), (75, 60), (8 * 60 + 30, 8 * 60 - 15)):
            at = start + timedelta(minutes=minutes)
            midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
            figures = targets(conn, DEMO_SITE, None, calendar, midnight, at)
            # Planned time: the shift from its start (to the minute) less the break (and, for a
            # demo started in the evening, the calendar's shift of the day before, after midnight).
            spans = planned(calendar, midnight, at, None)
            begin = start.replace(second=0)
            in_shift = sum(max(0.0, (min(b, at) - max(a, begin)).total_seconds()) for a, b in spans)
            # Since midnight after it: the shift's rest (the break was before).
            rest = round((begin + timedelta(hours=8) - midnight).total_seconds() / 60)
            assert round(in_shift / 60) == (planned_min if at.date() == start.date() else rest), spans
            # Targets ask from the demo's start on (17 s after the shift's minute); after midnight,
            # for the rest of the demo's shift.
            asked_s = sum(max(0.0, (min(b, at) - max(a, start)).total_seconds()) for a, b in spans)
            assert figures.units_today == (round(rate * asked_s / 3600) if asked_s else None), minutes
        # Before the demo: nothing asked for, though the calendar's shift of the day before may
        # reach into today (a demo started in the evening).
        assert targets(conn, DEMO_SITE, None, calendar, today, start).units_today is None


def register_demo_targets_at(dsn: str, at: datetime) -> None:
    from devstack.demo import register_demo_targets

    register_demo_targets(dsn, at)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT DISTINCT effective_from FROM station_targets WHERE set_by = 'demo'"
        ).fetchall()
    assert rows == [(at,)]
