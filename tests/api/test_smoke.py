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
    """A window covering the seeded history (it runs up to now), for the hourly series."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC).replace(microsecond=0)
    return {"from": (now - timedelta(days=3)).isoformat(), "to": (now + timedelta(minutes=1)).isoformat()}


def test_seed_is_realistic_and_runs_up_to_now(client: TestClient, settings: ApiSettings) -> None:
    from datetime import UTC, datetime, timedelta

    import psycopg

    before = datetime.now(UTC)
    assert client.post("/api/seed").status_code == 200
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT min(ts), max(ts) FROM events").fetchone()
    assert row is not None
    first, last = row
    # History joins up with the live data: it ends at the moment of the seed (shifts run round the clock).
    assert before - timedelta(seconds=5) <= last <= datetime.now(UTC)
    # ... and begins with the first shift (06:00 UTC) two days before today.
    today = before.replace(hour=0, minute=0, second=0, microsecond=0)
    assert first == today - timedelta(days=2) + timedelta(hours=6)
    workers = client.get("/api/metrics/workers").json()
    for w in workers:
        assert w["total_active_time_hours"] > 1, w
        assert 20 <= w["units_per_hour"] <= 130, w  # 30-120 s per unit while working
        assert 60 <= w["utilization_percentage"] <= 92, w
    # The stations' rates spread widely (S5 is the slow one by design; who works where varies by day).
    rates = sorted(s["throughput_rate"] for s in client.get("/api/metrics/workstations").json())
    assert rates[0] < 0.75 * rates[-1], rates
    f = client.get("/api/metrics/factory").json()
    assert 20 <= f["average_production_rate"] <= 130
    assert 60 <= f["average_utilization_percentage"] <= 90


def test_seed_shows_quality_and_oee(client: TestClient) -> None:
    """The seed's units carry SKUs and rejects and its stations have targets: the figures are filled."""
    assert client.post("/api/seed").status_code == 200
    q = _recent(client)
    stations = {s["station_id"]: s for s in client.get("/api/v1/metrics/workstations", params=q).json()}
    made = [s for s in stations.values() if s["total_units_produced"] > 0]
    assert made and all(s["oee_percentage"] is not None and s["target_units"] for s in made)
    # Stations that report rejects (S1-S3, S5) and those that do not (S4, S6): good units or all good.
    for sid, s in stations.items():
        if s["total_units_produced"] == 0:
            continue
        reports = sid in ("S1", "S2", "S3", "S5")
        assert s["quality_reported_percentage"] == (100 if reports else 0), (sid, s)
        assert (s["rejected_units"] > 0) == reports or s["total_units_produced"] < 30, (sid, s)
        assert 80 < s["quality_percentage"] <= 100
    targets = client.get("/api/v1/targets/stations/S1", params={"sku": "A"}).json()
    assert targets["current"]["ideal_cycle_time_s"] == 40
    factory = client.get("/api/v1/metrics/factory", params=q).json()["targets"]
    assert factory["rejected_units"] == sum(s["rejected_units"] for s in stations.values())
    assert 0 < factory["oee_percentage"] < 100
