"""worker_count / station_count (known) and active_*_count (in the window) for ids that come from events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.settings import ApiSettings
from takt.store.rollups import refresh_all

pytestmark = pytest.mark.wallclock  # dates computed from now; scripts/moved_clock.py moves the clock


def test_counts_include_workers_and_stations_seen_only_in_events(
    client: TestClient, settings: ApiSettings
) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)

    def state(minutes: int, worker: str, station: str, kind: str = "working") -> dict[str, object]:
        ts = (t0 + timedelta(minutes=minutes)).isoformat()
        return {"timestamp": ts, "worker_id": worker, "station_id": station, "event_type": kind,
                "confidence": 0.9, "duration_s": 600.0}  # fmt: skip

    batch = [state(0, "w-a", "st-x"), state(0, "w-b", "st-y"), state(60, "w-b", "st-y", "idle")]
    batch.append(state(0, "unknown", "st-z"))
    r = client.post("/api/events/batch", json=batch)
    assert r.status_code == 200 and r.json()["success_count"] == 4, r.text
    with psycopg.connect(settings.database_url) as conn:
        refresh_all(conn, max_gap_s=settings.max_state_gap_s)
    everything = client.get("/api/metrics/factory").json()
    assert everything["total_productive_time_hours"] > 0
    assert everything["worker_count"] == 2  # w-a, w-b (never registered); 'unknown' is not a worker
    assert everything["station_count"] == 3
    assert everything["active_worker_count"] == 2
    assert everything["active_station_count"] == 3
    # A window holding only w-b's idle state: both still known, one of each active.
    late = {"from": (t0 + timedelta(minutes=60)).isoformat(), "to": (t0 + timedelta(minutes=70)).isoformat()}
    window = client.get("/api/metrics/factory", params=late).json()
    assert (window["worker_count"], window["station_count"]) == (2, 3)
    assert (window["active_worker_count"], window["active_station_count"]) == (1, 1)
    # Nothing in the window at all: none active.
    early = {"from": (t0 - timedelta(hours=2)).isoformat(), "to": (t0 - timedelta(hours=1)).isoformat()}
    empty = client.get("/api/metrics/factory", params=early).json()
    assert (empty["active_worker_count"], empty["active_station_count"]) == (0, 0)
    assert empty["worker_count"] == 2
