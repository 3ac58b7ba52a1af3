from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.settings import ApiSettings

pytestmark = pytest.mark.wallclock  # dates computed from now; scripts/moved_clock.py moves the clock


def test_seed_then_metrics(client: TestClient, settings: ApiSettings) -> None:
    r = client.post("/api/seed")
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Database seeded successfully"}
    workers = client.get("/api/workers").json()
    assert len(workers) == 6
    f = client.get("/api/metrics/factory").json()
    assert f["worker_count"] == 6 and f["station_count"] == 6
    assert f["total_productive_time_hours"] > 0
    ws = client.get("/api/v1/metrics/workers").json()
    assert abs(sum(w["total_active_time_hours"] for w in ws) - f["total_productive_time_hours"]) < 1e-3
    st = client.get("/api/metrics/workstations/S1").json()
    assert st["occupancy_time_hours"] > 0
    assert client.get("/api/metrics/workers/nope").status_code == 404


def test_series_models_and_cycle_time_agree_with_totals(client: TestClient) -> None:
    assert client.post("/api/v1/seed").status_code == 200
    q_recent = _recent(client)
    workers = {w["worker_id"]: w for w in client.get("/api/metrics/workers", params=q_recent).json()}
    r = client.get("/api/metrics/timeseries", params={**q_recent, "bucket": "hour"})
    assert r.status_code == 200, r.text
    series = r.json()
    by_worker: dict[str, float] = {}
    for point in series:
        by_worker[point["id"]] = by_worker.get(point["id"], 0.0) + point["active_hours"]
    for wid, hours in by_worker.items():
        assert abs(hours - workers[wid]["total_active_time_hours"]) < 0.01
    factory = client.get("/api/metrics/factory", params=q_recent).json()
    models = client.get("/api/metrics/models", params=q_recent).json()
    assert [m["model_version"] for m in models] == ["seed"]
    assert models[0]["total_units"] == factory["total_production_count"] > 0
    ct = client.get("/api/metrics/workstations/S2/cycle-time", params=q_recent).json()
    assert ct["cycles"] > 0 and 0 <= ct["median_s"] <= ct["p90_s"]


def _recent(client: TestClient) -> dict[str, str]:
    """A window covering the seeded days, for the hourly series."""
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return {"from": (today - timedelta(days=3)).isoformat(), "to": today.isoformat()}
