"""Quality, OEE and SKU targets on the station, line, factory and hour-by-hour figures, JSON and CSV.

Worked by hand from docs/metrics.md ("Targets, availability, performance, quality, OEE").
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.settings import ApiSettings
from tests.api.test_targets import _at, _load, _state, _units, cal_client

__all__ = ["cal_client"]

PPT_S = 8.5 * 3600  # 08:00-17:00 minus the 12:00-12:30 break


def _u(hour: float, station: str, n: int, **extra: Any) -> dict[str, Any]:
    return {**_units(hour, station, n), **extra}


def _put(client: TestClient, station: str, ict: float, **extra: Any) -> None:
    body = {"ideal_cycle_time_s": ict, "effective_from": _at(0).isoformat(), **extra}
    r = client.put(f"/api/v1/targets/stations/{station}", json=body)
    assert r.status_code == 200, r.text


def _scenario(client: TestClient, settings: ApiSettings) -> None:
    """st-1: works 09-11; 60 red (6 rejected) at 09:30, 30 blue (no count reported) at 10:30, 10 without
    SKU (1 rejected) at 10:36; 60 s/unit station-wide, red 30 s, blue no target of its own.
    st-2: works 09-10; 90 red (0 rejected) at 09:30; red 20 s, no station-wide target.
    st-3: works 09-10; 5 units without SKU, all rejected; red 20 s only, so they have no target."""
    events = [
        _state(9, "w1", "st-1", "working", 7200),
        _u(9.5, "st-1", 60, sku="red", rejected=6),
        _u(10.5, "st-1", 30, sku="blue"),
        _u(10.6, "st-1", 10, rejected=1),
        _state(9, "w2", "st-2", "working", 3600),
        _u(9.5, "st-2", 90, sku="red", rejected=0),
        _state(9, "w3", "st-3", "working", 3600),
        _u(9.5, "st-3", 5, rejected=5),
    ]
    _load(client, settings, events)
    _put(client, "st-1", 60)
    _put(client, "st-1", 30, sku="red")
    _put(client, "st-2", 20, sku="red")
    _put(client, "st-3", 20, sku="red")
    r = client.put("/api/v1/lines/l1", json={"site_id": "site-a", "stations": ["st-1", "st-2", "st-3"]})
    assert r.status_code == 200, r.text


Q = {"from": _at(0).isoformat(), "to": _at(24).isoformat(), "site_id": "site-a"}


def test_station_figures_weigh_the_sku_mix_and_count_rejects(
    cal_client: TestClient, settings: ApiSettings
) -> None:
    _scenario(cal_client, settings)
    got = {s["station_id"]: s for s in cal_client.get("/api/v1/metrics/workstations", params=Q).json()}
    st1 = got["st-1"]
    ideal = 60 * 30 + 30 * 60 + 10 * 60  # red at its own target; blue and no-SKU at the station's
    assert st1["performance_percentage"] == pytest.approx(ideal / 7200 * 100, abs=1e-4)
    assert st1["target_units"] == pytest.approx(PPT_S * 100 / ideal, abs=1e-4)
    assert st1["availability_percentage"] == pytest.approx(7200 / PPT_S * 100, abs=1e-4)
    assert st1["quality_percentage"] == 93 and st1["rejected_units"] == 7
    assert st1["quality_reported_percentage"] == 70  # 60 + 10 of the 100 units reported a count
    oee = (7200 / PPT_S) * (ideal / 7200) * 0.93 * 100
    assert st1["oee_percentage"] == pytest.approx(oee, abs=1e-3)
    # SKU targets only, every unit of a SKU with one: targeted.
    st2 = got["st-2"]
    assert st2["performance_percentage"] == pytest.approx(50, abs=1e-4)
    assert st2["target_units"] == pytest.approx(PPT_S * 90 / 1800, abs=1e-3)
    assert (st2["quality_percentage"], st2["quality_reported_percentage"]) == (100, 100)
    # Units without any target: no target figures, quality still; so no OEE.
    st3 = got["st-3"]
    assert st3["target_units"] is None and st3["performance_percentage"] is None
    assert st3["quality_percentage"] == 0 and st3["rejected_units"] == 5 and st3["oee_percentage"] is None
    one = cal_client.get("/api/v1/metrics/workstations/st-1", params=Q).json()
    assert {k: one[k] for k in st1} == st1


def test_line_and_factory_sum_before_dividing(cal_client: TestClient, settings: ApiSettings) -> None:
    _scenario(cal_client, settings)
    factory = cal_client.get("/api/v1/metrics/factory", params=Q).json()["targets"]
    # The targeted stations: st-1 and st-2 (st-3's only period is not targeted).
    assert factory["units_in_planned_time"] == 190 and factory["rejected_units"] == 7
    assert factory["quality_percentage"] == pytest.approx(183 / 190 * 100, abs=1e-4)
    assert factory["quality_reported_percentage"] == pytest.approx(160 / 190 * 100, abs=1e-4)
    ideal = 4200 + 1800
    assert factory["performance_percentage"] == pytest.approx(ideal / (7200 + 3600) * 100, abs=1e-4)
    assert factory["target_units"] == pytest.approx(PPT_S * 100 / 4200 + PPT_S * 90 / 1800, abs=1e-3)
    a, p, q = (
        factory[k] for k in ("availability_percentage", "performance_percentage", "quality_percentage")
    )
    assert factory["oee_percentage"] == pytest.approx(a * p * q / 1e4, abs=1e-3)
    line = cal_client.get("/api/v1/metrics/lines/l1", params=Q).json()
    # The line counts all three stations: st-3's units and rejects too.
    assert line["targets"]["units_in_planned_time"] == 195 and line["targets"]["rejected_units"] == 12
    assert line["targets"]["quality_percentage"] == pytest.approx(183 / 195 * 100, abs=1e-4)
    per = {s["station_id"]: s for s in line["stations"]}
    stations = {s["station_id"]: s for s in cal_client.get("/api/v1/metrics/workstations", params=Q).json()}
    for sid in ("st-1", "st-2", "st-3"):
        assert per[sid]["quality_percentage"] == stations[sid]["quality_percentage"]
        assert per[sid]["oee_percentage"] == stations[sid]["oee_percentage"]


def test_hour_by_hour_targets_follow_the_mix(cal_client: TestClient, settings: ApiSettings) -> None:
    _scenario(cal_client, settings)
    q = {"from": _at(8).isoformat(), "to": _at(13).isoformat(), "site_id": "site-a", "station_id": "st-1"}
    hours = cal_client.get("/api/v1/metrics/hour-by-hour", params=q).json()["hours"]
    # 08-09 nothing made: the station-wide 60 s; 09-10 60 red at 30 s; 10-11 40 units at 60 s;
    # 12-13 half an hour.
    assert [h["target_units"] for h in hours] == [60, 120, 60, 60, 30]
    assert [h["actual_units"] for h in hours] == [0, 60, 40, 0, 0]


def test_quality_figures_in_csv(cal_client: TestClient, settings: ApiSettings) -> None:
    _scenario(cal_client, settings)
    stations = cal_client.get("/api/v1/metrics/workstations", params=Q).json()
    r = cal_client.get("/api/v1/metrics/workstations", params={**Q, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    for name in ("quality_percentage", "oee_percentage", "rejected_units", "quality_reported_percentage"):
        assert [row[name] for row in rows] == ["" if s[name] is None else str(s[name]) for s in stations]
    factory = list(
        csv.DictReader(
            io.StringIO(cal_client.get("/api/v1/metrics/factory", params={**Q, "format": "csv"}).text)
        )
    )
    assert float(factory[0]["targets.quality_percentage"]) == pytest.approx(183 / 190 * 100, abs=1e-3)
    assert factory[0]["targets.rejected_units"] == "7"
