"""Targets, availability, performance, quality and OEE equal a raw computation (tests/api/reference_oee.py).

Random windows, station-wide and SKU target changes with effective dates, units with and without
SKU and reject counts, late events (some chunks refreshed, the rest in the pending tail).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.settings import ApiSettings, SiteCalendar
from takt.contract import Event
from takt.store.rollups import ROLLUP_TABLES, refresh_all
from tests.api.conftest import ADMIN
from tests.api.reference import Raw
from tests.api.reference_oee import day_shift, station_figures
from tests.api.test_property import BASE, GAP, _as_json, event_st

# Denser production inside the shift (BASE is 08:00), so working time and units meet targets often.
shift_event_st = st.fixed_dictionaries(
    {
        "offset": st.integers(-3600, 5 * 3600),
        "worker_id": st.sampled_from(["W1", "W2", "unknown"]),
        "station_id": st.sampled_from(["S1", "S2"]),
        "event_type": st.sampled_from(["working", "working", "idle", "product_count", "product_count"]),
        "count": st.integers(0, 5),
        "duration_s": st.none() | st.integers(1, 3600).map(float),
        "shadow": st.sampled_from([False, False, False, True]),
        "model_version": st.just("m1"),
        "confidence": st.just(0.9),
    }
)

SITE = "site-a"
DAY_SHIFT = {"name": "day", "start": "08:00", "end": "17:00", "breaks": [{"start": "12:00", "end": "12:30"}]}
CALENDAR = SiteCalendar.model_validate({"timezone": "UTC", "shifts": [DAY_SHIFT]})

# What a product_count event adds: its SKU (or none) and a reject count (or none), as a share of count.
unit_extra_st = st.tuples(st.sampled_from([None, None, "A", "B"]), st.none() | st.integers(0, 4))

change_st = st.tuples(
    st.sampled_from([-12 * 3600, -3600]) | st.integers(-12 * 3600, 8 * 3600),
    st.integers(1, 240).map(lambda x: x / 4),
)


@pytest.fixture
def oee_client(settings: ApiSettings) -> Iterator[TestClient]:
    s = settings.model_copy(update={"calendars": {SITE: CALENDAR}})
    with TestClient(create_app(s), headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        yield c


def _reset(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"TRUNCATE events, event_ids, workers, workstations, event_invalidations, station_targets, "
            f"{', '.join(ROLLUP_TABLES)}"
        )
        conn.execute("UPDATE rollup_meta SET max_duration_s = 0")


def _body(d: dict[str, Any], extra: tuple[str | None, int | None]) -> dict[str, Any]:
    body = {**_as_json(d), "site_id": SITE}
    sku, reject = extra
    if body["event_type"] == "product_count":
        if sku is not None:
            body["sku"] = sku
        if reject is not None:
            body["rejected"] = min(reject, body["count"])
    return body


def _raw(body: dict[str, Any]) -> Raw:
    e = Event.model_validate(body)
    return Raw(
        e.event_id, e.timestamp, e.worker_id, e.station_id, e.event_type.value, e.count, e.duration_s,
        e.shadow, e.model_version, e.confidence, e.rejected, e.sku,
    )  # fmt: skip


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=2e-3)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(shift_event_st, min_size=15, max_size=50) | st.lists(event_st, min_size=1, max_size=30),
    # S1 always has a target (the first change mostly before the events); S2 has none or some.
    changes=st.fixed_dictionaries(
        {"S1": st.lists(change_st, min_size=1, max_size=3), "S2": st.lists(change_st, max_size=2)}
    ),
    # SKU targets: S2's may be its only ones (units without SKU then have no target).
    sku_changes=st.fixed_dictionaries(
        {
            station: st.dictionaries(st.sampled_from(["A", "B"]), st.lists(change_st, min_size=1, max_size=2))
            for station in ("S1", "S2")
        }
    ),
    extras=st.lists(unit_extra_st, min_size=50, max_size=50),
    window=st.tuples(st.integers(-10 * 3600, 5 * 3600), st.integers(1, 40 * 3600))
    | st.tuples(st.integers(-3600, 0), st.integers(4 * 3600, 6 * 3600)),
    refreshed=st.integers(0, 2),
    seed=st.integers(0, 2**32 - 1),
)
def test_target_figures_equal_raw_computation(
    oee_client: TestClient,
    settings: ApiSettings,
    events: list[dict[str, Any]],
    changes: dict[str, list[tuple[int, float]]],
    sku_changes: dict[str, dict[str, list[tuple[int, float]]]],
    extras: list[tuple[str | None, int | None]],
    window: tuple[int, int],
    refreshed: int,
    seed: int,
) -> None:
    client = oee_client
    _reset(settings.database_url)
    bodies = list({_raw(b).event_id: b for b in map(_body, events, extras)}.values())
    random.Random(seed).shuffle(bodies)
    # Some chunks rolled up, the rest left in the pending tail (read-your-writes).
    half = len(bodies) // 2
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for i, chunk in enumerate((bodies[:half], bodies[half:])):
            if chunk:
                r = client.post("/api/events/batch", json=chunk)
                assert r.status_code == 200 and r.json()["success_count"] == len(chunk), r.text
            if i < refreshed:
                refresh_all(conn, max_gap_s=GAP)
    stations = {b["workstation_id"] for b in bodies}
    expected_changes = {}
    for station, cs in changes.items():
        if station not in stations:
            continue
        expected_changes[station] = [(BASE + timedelta(seconds=at), ict) for at, ict in cs]
        for at, ict in expected_changes[station]:
            r = client.put(
                f"/api/v1/targets/stations/{station}",
                json={"ideal_cycle_time_s": ict, "effective_from": at.isoformat()},
            )
            assert r.status_code == 200, r.text
    expected_skus: dict[str, dict[str, list[tuple[datetime, float]]]] = {}
    for station, by_sku in sku_changes.items():
        if station not in stations:
            continue
        for sku, cs in by_sku.items():
            timed = [(BASE + timedelta(seconds=offset), ict) for offset, ict in cs]
            expected_skus.setdefault(station, {})[sku] = timed
            for when, ict in timed:
                body = {"ideal_cycle_time_s": ict, "effective_from": when.isoformat(), "sku": sku}
                r = client.put(f"/api/v1/targets/stations/{station}", json=body)
                assert r.status_code == 200, r.text
    lo = BASE + timedelta(seconds=window[0])
    hi = lo + timedelta(seconds=window[1])
    planned = day_shift(lo, hi, time(8), time(17), (time(12), time(12, 30)))
    expected = station_figures([_raw(b) for b in bodies], expected_changes, planned, GAP, expected_skus)
    names = (
        "target_units", "availability_percentage", "performance_percentage", "quality_percentage",
        "oee_percentage", "rejected_units",
    )  # fmt: skip
    q = {"from": lo.isoformat(), "to": hi.isoformat(), "site_id": SITE}
    got = {s["station_id"]: s for s in client.get("/api/metrics/workstations", params=q).json()}
    for station, figures in expected.items():
        for name in names:
            assert _close(got[station][name], figures[name]), (
                station,
                name,
                got[station][name],
                figures[name],
            )
        one = client.get(f"/api/metrics/workstations/{station}", params=q).json()
        assert all(one[name] == got[station][name] for name in names)
    factory = client.get("/api/metrics/factory", params=q).json()["targets"]
    targeted = [s for s in expected if expected[s]["target_units"] is not None]
    assert (factory is None) == (not targeted)
    if factory is not None:
        total = sum(expected[s]["target_units"] or 0.0 for s in targeted)
        assert _close(factory["target_units"], total)
        units = sum(expected[s]["units"] or 0 for s in targeted)
        good = sum(expected[s]["good"] or 0 for s in targeted)
        assert _close(factory["quality_percentage"], good / units * 100 if units else None)
        assert factory["rejected_units"] == units - good
