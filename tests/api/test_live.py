"""Read-your-writes: every metrics endpoint includes what the refresher has not rolled up yet.

The app under test runs no refresher (``refresh_interval_s=0``); the tests run
refresh rounds themselves, whole, partial or concurrently with the reads.
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.metrics import engine, live
from api.metrics.engine import model_totals, snapshot, station_totals, worker_totals
from api.metrics.live import load_tail
from api.routers.seed import seed_events
from api.settings import ApiSettings
from takt.contract import Event
from takt.store.events import write_events
from takt.store.rollups import refresh, refresh_all
from tests.api.reference import Raw
from tests.api.test_property import GAP, _assert_api_equals_raw

# A fixed day well in the past: the definitions do not depend on the date.
DAY = datetime(2026, 3, 2, tzinfo=UTC)


def _body(ts: datetime, kind: str, worker: str = "W1", station: str = "S1", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "timestamp": ts.isoformat(),
        "worker_id": worker,
        "workstation_id": station,
        "event_type": kind,
        "confidence": 0.9,
        "count": 1 if kind == "product_count" else 0,
        "model_version": "m1",
        **extra,
    }


def _raw(body: dict[str, Any]) -> Raw:
    return Raw(
        uuid.UUID(body["event_id"]),
        datetime.fromisoformat(body["timestamp"]),
        body["worker_id"],
        body["workstation_id"],
        body["event_type"],
        body["count"],
        body.get("duration_s"),
        body.get("shadow", False),
        body["model_version"],
        body["confidence"],
    )


def _post(client: TestClient, bodies: list[dict[str, Any]]) -> None:
    for i in range(0, len(bodies), 500):
        r = client.post("/api/events/batch", json=bodies[i : i + 500])
        assert r.status_code == 200 and r.json()["success_count"] == len(bodies[i : i + 500]), r.text


def test_seed_events_read_back_at_once_give_the_final_numbers(
    client: TestClient, settings: ApiSettings
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    events = seed_events(now)
    _post(client, [e.model_dump(mode="json", by_alias=True, exclude_none=True) for e in events])
    lo, hi = now - timedelta(days=4), now + timedelta(minutes=1)
    q = {"from": lo.isoformat(), "to": hi.isoformat()}
    paths = [
        "/api/metrics/factory",
        "/api/metrics/workers",
        "/api/metrics/workstations",
        "/api/metrics/models",
    ]
    at_once = {p: client.get(p, params=q).json() for p in paths}
    assert at_once["/api/metrics/factory"]["total_productive_time_hours"] > 10
    assert at_once["/api/metrics/factory"]["total_production_count"] > 100
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        pending = conn.execute("SELECT count(*) FROM event_invalidations").fetchone()
        assert pending and pending[0] > 0  # nothing was rolled up before the reads
        refresh_all(conn, max_gap_s=GAP)
        with conn.transaction():
            assert worker_totals(conn, [(0, lo, hi)], live=False)  # rolled up now
    assert {p: client.get(p, params=q).json() for p in paths} == at_once


def test_a_state_from_before_the_tail_that_runs_through_its_hours(
    client: TestClient, settings: ApiSettings
) -> None:
    """A long state that began before the tail's first event and runs past that event's hour is
    read from events (the lookback case): the tail's later hours replace every stored piece."""
    t0 = DAY.replace(hour=8)
    rolled = [
        _body(t0 + timedelta(minutes=5), "working", duration_s=3 * 3600.0),
        _body(t0 + timedelta(minutes=20), "idle"),
        _body(t0 + timedelta(minutes=30), "product_count"),
    ]
    _post(client, rolled)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        refresh_all(conn, max_gap_s=GAP)
    pending = [
        _body(t0 + timedelta(minutes=40), "absent", duration_s=1800.0),
        _body(t0 + timedelta(minutes=70), "product_count"),
        _body(t0 + timedelta(minutes=95), "working", station="S2"),
    ]
    _post(client, pending)
    raws = [_raw(b) for b in rolled + pending]
    for lo, hi in ((DAY, DAY + timedelta(days=1)), (t0 + timedelta(minutes=33), t0 + timedelta(minutes=99))):
        _assert_api_equals_raw(client, raws, lo, hi)


def test_late_event_in_an_old_hour_and_a_deletion(client: TestClient, settings: ApiSettings) -> None:
    t0 = DAY.replace(hour=9)
    bodies = [_body(t0 + timedelta(minutes=m), k) for m, k in ((0, "working"), (30, "idle"), (50, "working"))]
    bodies += [_body(t0 + timedelta(minutes=m), "product_count") for m in (10, 20, 40)]
    _post(client, bodies)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        refresh_all(conn, max_gap_s=GAP)
    late = [_body(t0 + timedelta(minutes=15), "absent"), _body(t0 + timedelta(minutes=25), "product_count")]
    _post(client, late)
    raws = [_raw(b) for b in bodies + late]
    window = (DAY, DAY + timedelta(days=1))
    _assert_api_equals_raw(client, raws, *window)
    gone = bodies[1]  # the idle state: the working state before it now runs to the late absent one
    assert client.delete(f"/api/events/{gone['event_id']}").status_code == 200
    raws = [r for r in raws if str(r.event_id) != gone["event_id"]]
    _assert_api_equals_raw(client, raws, *window)
    _assert_api_equals_raw(client, raws, t0 + timedelta(minutes=12), t0 + timedelta(minutes=31))


def test_reads_during_concurrent_refresh_rounds_see_each_event_once(
    client: TestClient, settings: ApiSettings
) -> None:
    """A refresher consuming invalidations while a read runs: the read's snapshot holds both the
    invalidations and the rollups as they were, so nothing counts twice or not at all."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def refresher() -> None:
        rng = random.Random(3)
        try:
            with psycopg.connect(settings.database_url, autocommit=True) as conn:
                while not stop.is_set():
                    refresh(conn, max_gap_s=GAP, batch=rng.randint(1, 4))
        except BaseException as exc:  # surfaced by the test thread
            errors.append(exc)

    thread = threading.Thread(target=refresher, daemon=True)
    thread.start()
    rng = random.Random(5)
    raws: list[Raw] = []
    try:
        for _ in range(12):
            chunk = [
                _body(
                    DAY.replace(hour=10) + timedelta(seconds=rng.uniform(0, 7200)),
                    rng.choice(["working", "idle", "absent", "product_count"]),
                    worker=rng.choice(["W1", "W2", "unknown"]),
                    station=rng.choice(["S1", "S2"]),
                )
                for _ in range(rng.randint(1, 6))
            ]
            _post(client, chunk)
            raws += [_raw(b) for b in chunk]
            _assert_api_equals_raw(client, raws, DAY.replace(hour=9, minute=17), DAY.replace(hour=13))
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors


def test_one_tail_per_snapshot_and_none_kept_after_it(
    client: TestClient, settings: ApiSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engine calls inside one ``snapshot`` share one tail (loaded once, even with writes committed
    in between); a read after the snapshot, or inside a caller's own transaction after its own
    write, loads the tail again and sees the write: no tail outlives its snapshot."""
    loads: list[float] = []

    def counted(conn: psycopg.Connection[Any], gap_s: float) -> live.Tail:
        loads.append(gap_s)
        return load_tail(conn, gap_s)

    monkeypatch.setattr(engine, "load_tail", counted)
    at = DAY.replace(hour=10)
    _post(client, [_body(at, "working"), _body(at + timedelta(minutes=5), "idle")])
    windows = [(0, DAY, DAY + timedelta(days=1))]

    def working(conn: psycopg.Connection[Any]) -> float:
        return worker_totals(conn, windows, gap_s=GAP)[(0, "W1")].working_s

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        with snapshot(conn):
            assert working(conn) == 300.0
            # Committed by another connection: not in this snapshot, and the tail is not reloaded.
            _post(client, [_body(at + timedelta(minutes=2), "absent")])
            assert working(conn) == 300.0
            assert (0, "S1") in station_totals(conn, windows, gap_s=GAP)
            assert model_totals(conn, windows, gap_s=GAP)
            assert len(loads) == 1
        assert not engine._snapshot_tails
        assert working(conn) == 120.0
        assert len(loads) == 2
        with pytest.raises(RuntimeError), snapshot(conn):
            working(conn)
            raise RuntimeError
        assert not engine._snapshot_tails
        with conn.transaction():  # a caller's own transaction: its write shows in its next read
            assert working(conn) == 120.0
            event = Event.model_validate(_body(at + timedelta(minutes=1), "idle"))
            write_events(conn, [event])
            assert working(conn) == 60.0
