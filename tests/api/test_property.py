"""The API's numbers equal a straightforward computation from raw events (tests/api/reference.py)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.settings import ApiSettings
from takt.contract import Event
from takt.store import rollups
from takt.store.rollups import ROLLUP_TABLES, refresh, refresh_all
from tests.api.reference import Raw, cycle_time, metrics, models

BASE = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
GAP = 600.0

event_st = st.fixed_dictionaries(
    {
        "offset": st.integers(-9 * 3600 * 2, 4 * 3600 * 2).map(lambda x: x / 2),
        "worker_id": st.sampled_from(["W1", "W2", "W3", "unknown"]),
        "station_id": st.sampled_from(["S1", "S2"]),
        "event_type": st.sampled_from(["working", "working", "idle", "absent", "product_count"]),
        "count": st.integers(0, 3),
        "duration_s": st.none() | st.none() | st.integers(0, 1800).map(lambda x: x / 2),
        "shadow": st.sampled_from([False, False, False, True]),
        "model_version": st.sampled_from(["m1", "m2"]),
        "confidence": st.integers(0, 100).map(lambda x: x / 100),
    }
)


# Longer explicit states too (up to 75 min), so that states cross whole hours
# and reach from rolled-up data into the pending tail's hours.
def _longer(d: dict[str, Any], longer: bool) -> dict[str, Any]:
    duration = d["duration_s"]
    return {**d, "duration_s": duration * 5} if longer and isinstance(duration, float) else d


live_event_st = st.builds(_longer, event_st, st.booleans())


def _as_json(d: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "timestamp": (BASE + timedelta(seconds=d["offset"])).isoformat(),
        "worker_id": d["worker_id"],
        "workstation_id": d["station_id"],
        "event_type": d["event_type"],
        "confidence": d["confidence"],
        "count": d["count"] if d["event_type"] == "product_count" else 0,
        "model_version": d["model_version"],
        "shadow": d["shadow"],
    }
    if d["duration_s"] is not None and d["event_type"] != "product_count":
        body["duration_s"] = d["duration_s"]
    return body


def _raw(body: dict[str, Any]) -> Raw:
    e = Event.model_validate(body)
    return Raw(
        e.event_id,
        e.timestamp,
        e.worker_id,
        e.station_id,
        e.event_type.value,
        e.count,
        e.duration_s,
        e.shadow,
        e.model_version,
        e.confidence,
    )


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=2e-3)


@pytest.fixture(params=["hours", "parts"])
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """'parts': every key-hour of the last day of data stored in parts of 5 minutes (busy or not,
    see takt.store.rollups.PART_US), so the refresher's incremental path and every reader of
    parts meet each interleaving (tests/collector/test_rollup_parts.py covers the compaction)."""
    if request.param == "parts":
        monkeypatch.setattr(rollups, "PART_MIN_EVENTS", 0)
        monkeypatch.setattr(rollups, "PART_US", 300_000_000)
        monkeypatch.setattr(rollups, "PART_RECENT", timedelta(hours=24))
    return str(request.param)


def _reset(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"TRUNCATE events, workers, workstations, event_invalidations, dead_letters, "
            f"{', '.join(ROLLUP_TABLES)}"
        )
        conn.execute("UPDATE rollup_meta SET max_duration_s = 0")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(event_st, min_size=1, max_size=40),
    dup_seed=st.integers(0, 2**32 - 1),
    chunks=st.integers(1, 4),
    window=st.tuples(st.integers(-10 * 3600, 5 * 3600), st.integers(1, 40 * 3600)),
    aligned=st.booleans(),
)
def test_api_equals_raw_computation(
    layout: str,
    client: TestClient,
    settings: ApiSettings,
    events: list[dict[str, Any]],
    dup_seed: int,
    chunks: int,
    window: tuple[int, int],
    aligned: bool,
) -> None:
    _reset(settings.database_url)
    rng = random.Random(dup_seed)
    # Bodies without an event_id get one derived from all their content
    # (docs/contract.md): bodies with one id are the same event.
    unique = {_raw(b).event_id: b for b in reversed([_as_json(d) for d in events])}
    bodies = list(reversed(unique.values()))
    # Duplicates and any arrival order; a refresh between chunks makes later
    # chunks late data for rollups already built.
    arrivals = bodies + rng.sample(bodies, k=rng.randint(0, len(bodies)))
    rng.shuffle(arrivals)
    size = math.ceil(len(arrivals) / chunks)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for i in range(0, len(arrivals), size):
            r = client.post("/api/events/batch", json=arrivals[i : i + size])
            assert r.status_code == 200 and r.json()["success_count"] == len(arrivals[i : i + size]), r.text
            refresh_all(conn, max_gap_s=GAP)
    lo = BASE + timedelta(seconds=window[0])
    hi = lo + timedelta(seconds=window[1])
    if aligned:
        lo, hi = lo.replace(minute=0, second=0), hi.replace(minute=0, second=0) + timedelta(hours=1)
    _assert_api_equals_raw(client, [_raw(b) for b in bodies], lo, hi)


def _assert_keys(got: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    """The expected rows, and any other row (a worker or station registered by an event that was
    deleted since) with nothing but zeros."""
    assert set(expected) <= set(got), (set(got), set(expected))
    for key in set(got) - set(expected):
        figures = [v for v in got[key].values() if isinstance(v, int | float) and not isinstance(v, bool)]
        assert not any(figures), (key, got[key])


def _assert_api_equals_raw(client: TestClient, raws: list[Raw], lo: datetime, hi: datetime) -> None:
    """Every metrics endpoint for [lo, hi) equals the reference computation over ``raws``."""
    expected = metrics(raws, lo, hi, GAP)
    q = {"from": lo.isoformat(), "to": hi.isoformat()}

    got_workers = {w["worker_id"]: w for w in client.get("/api/metrics/workers", params=q).json()}
    _assert_keys(got_workers, expected["workers"])
    for wid, exp in expected["workers"].items():
        for key, value in exp.items():
            assert _close(got_workers[wid][key], value), (wid, key, got_workers[wid][key], value)

    got_stations = {s["station_id"]: s for s in client.get("/api/metrics/workstations", params=q).json()}
    _assert_keys(got_stations, expected["workstations"])
    for sid, exp in expected["workstations"].items():
        for key, value in exp.items():
            assert _close(got_stations[sid][key], value), (sid, key, got_stations[sid][key], value)

    factory = client.get("/api/metrics/factory", params=q).json()
    for key, value in expected["factory"].items():
        assert _close(factory[key], value), (key, factory[key], value)

    got_models = {
        (m["model_version"], m["shadow"]): m for m in client.get("/api/metrics/models", params=q).json()
    }
    expected_models = models(raws, lo, hi, GAP)
    assert set(got_models) == set(expected_models)
    for key, exp in expected_models.items():
        for name, value in exp.items():
            assert _close(got_models[key][name], value), (key, name, got_models[key][name], value)

    for sid in sorted({r.station_id for r in raws}):
        got = client.get(f"/api/metrics/workstations/{sid}/cycle-time", params=q).json()
        n, median, p90 = cycle_time(raws, sid, lo, hi)
        assert got["cycles"] == n, (sid, got, n)
        for name, value in (("median_s", median), ("p90_s", p90)):
            assert (got[name] is None) == (value is None), (sid, name, got, value)
            if value is not None:
                assert _close(got[name], value), (sid, name, got[name], value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(live_event_st, min_size=1, max_size=30),
    seed=st.integers(0, 2**32 - 1),
    chunks=st.integers(1, 5),
    window=st.tuples(st.integers(-10 * 3600, 5 * 3600), st.integers(1, 40 * 3600)),
    aligned=st.booleans(),
)
def test_reads_see_every_write_without_waiting_for_the_refresher(
    layout: str,
    client: TestClient,
    settings: ApiSettings,
    events: list[dict[str, Any]],
    seed: int,
    chunks: int,
    window: tuple[int, int],
    aligned: bool,
) -> None:
    """Writes, deletions and reads interleaved; the refresher (off in this app) runs only now and
    then and only part of the way, so reads meet any mix of rolled-up and pending data and must
    still equal the raw computation over everything written so far."""
    _reset(settings.database_url)
    rng = random.Random(seed)
    unique = {_raw(b).event_id: b for b in reversed([_as_json(d) for d in events])}
    bodies = list(reversed(unique.values()))
    rng.shuffle(bodies)
    lo = BASE + timedelta(seconds=window[0])
    hi = lo + timedelta(seconds=window[1])
    if aligned:
        lo, hi = lo.replace(minute=0, second=0), hi.replace(minute=0, second=0) + timedelta(hours=1)
    stored: dict[Any, Raw] = {}
    size = math.ceil(len(bodies) / chunks)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for i in range(0, len(bodies), size):
            chunk = bodies[i : i + size]
            r = client.post("/api/events/batch", json=chunk)
            assert r.status_code == 200 and r.json()["success_count"] == len(chunk), r.text
            stored.update((raw.event_id, raw) for raw in map(_raw, chunk))
            if stored and rng.random() < 0.3:
                gone = rng.choice(sorted(stored, key=str))
                assert client.delete(f"/api/events/{gone}").status_code == 200
                del stored[gone]
            # No refresh at all, a partial one (a round of a few invalidations), or a full one.
            roll = rng.random()
            if roll < 0.3:
                refresh(conn, max_gap_s=GAP, batch=rng.randint(1, 3))
            elif roll < 0.45:
                refresh_all(conn, max_gap_s=GAP)
            _assert_api_equals_raw(client, list(stored.values()), lo, hi)
