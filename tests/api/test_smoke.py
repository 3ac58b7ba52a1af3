from __future__ import annotations

from fastapi.testclient import TestClient

from api.settings import ApiSettings


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
