"""The rollup paths of api.metrics.engine equal the raw computation from events, window by window.

Many windows per data set, with edges anywhere (microseconds included), late
data arriving between refreshes, shadow events and the shared 'unknown' id:
whole days, whole hours and parts of hours read from the rollups must add up
to what the raw scan of events gives. Cycle-time percentiles must be equal,
not just close.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.metrics.engine import (
    Labelled,
    bucket_windows,
    cycle_times,
    model_totals,
    station_totals,
    worker_totals,
)
from takt.contract import Event
from takt.store.events import write_events
from takt.store.rollups import ROLLUP_TABLES, refresh_all
from tests import oracle

BASE = datetime(2026, 1, 5, 22, 0, tzinfo=UTC)  # windows cross midnight: day rollups are used
GAP = 600.0
MS = timedelta(milliseconds=1)

event_st = st.fixed_dictionaries(
    {
        "offset_ms": st.integers(-30 * 3600 * 1000, 30 * 3600 * 1000),
        "worker_id": st.sampled_from(["W1", "W2", "unknown"]),
        "station_id": st.sampled_from(["S1", "S2"]),
        "event_type": st.sampled_from(["working", "working", "idle", "absent", "product_count"]),
        "count": st.integers(0, 2),
        "duration_s": st.none() | st.none() | st.integers(0, 9000).map(lambda x: x / 4),
        "shadow": st.sampled_from([False, False, False, True]),
        "model_version": st.sampled_from(["m1", "m2"]),
    }
)
# (start, length) in microseconds around BASE: from sub-second to two days.
window_st = st.tuples(
    st.integers(-32 * 3600 * 10**6, 32 * 3600 * 10**6),
    st.one_of(st.integers(1, 10**6), st.integers(1, 3600 * 10**6), st.integers(1, 50 * 3600 * 10**6)),
)


@pytest.fixture
def conn(api_db: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(api_db, autocommit=True, options="-c TimeZone=UTC") as c:
        yield c


def _event(d: dict[str, Any]) -> Event:
    body: dict[str, Any] = {
        "timestamp": BASE + d["offset_ms"] * MS,
        "worker_id": d["worker_id"],
        "station_id": d["station_id"],
        "event_type": d["event_type"],
        "confidence": 0.5,
        "count": d["count"] if d["event_type"] == "product_count" else 0,
        "model_version": d["model_version"],
        "shadow": d["shadow"],
    }
    if d["duration_s"] is not None and d["event_type"] != "product_count":
        body["duration_s"] = d["duration_s"]
    return Event.model_validate(body)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def _same(got: dict[Any, Any], want: dict[Any, Any]) -> None:
    for key in set(got) | set(want):
        a, b = got.get(key), want.get(key)
        fields = type(a or b).__slots__
        for name in fields:
            x = getattr(a, name) if a else 0
            y = getattr(b, name) if b else 0
            assert _close(x, y), (key, name, x, y)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(event_st, min_size=1, max_size=60),
    windows=st.lists(window_st, min_size=1, max_size=8),
    chunks=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_rollups_equal_raw_for_any_window(
    conn: psycopg.Connection[Any],
    events: list[dict[str, Any]],
    windows: list[tuple[int, int]],
    chunks: int,
    seed: int,
) -> None:
    conn.execute(f"TRUNCATE events, event_invalidations, {', '.join(ROLLUP_TABLES)}")
    conn.execute("UPDATE rollup_meta SET max_duration_s = 0")
    stored = [_event(d) for d in events]
    random.Random(seed).shuffle(stored)
    size = math.ceil(len(stored) / chunks)
    for i in range(0, len(stored), size):  # later chunks are late data for built rollups
        write_events(conn, stored[i : i + size])
        refresh_all(conn, max_gap_s=GAP)

    spans = [
        (BASE + a * timedelta(microseconds=1), BASE + (a + n) * timedelta(microseconds=1)) for a, n in windows
    ]
    # Each window alone, and all of them under one label where they do not overlap (a shift's windows).
    labelled: list[Labelled] = [(i, lo, hi) for i, (lo, hi) in enumerate(spans)]
    disjoint: list[Labelled] = []
    for lo, hi in sorted(spans):
        if not disjoint or lo >= disjoint[-1][2]:
            disjoint.append((99, lo, hi))
    # Day buckets of a UTC+1 site: whole UTC days minus or plus hours.
    local_days = bucket_windows(
        BASE - timedelta(hours=40), BASE + timedelta(hours=40), timedelta(days=1), BASE + timedelta(hours=1)
    )
    # Spans whose hours are read as a day minus other hours (BASE is 22:00).
    midnight = BASE - timedelta(hours=22)
    fixed: list[Labelled] = [
        (200, midnight + timedelta(hours=2, minutes=10), midnight + timedelta(hours=20, seconds=3)),
        (201, midnight, midnight + timedelta(hours=19)),
        (202, midnight + timedelta(hours=5), midnight + timedelta(days=1)),
        (203, midnight - timedelta(hours=19, minutes=1), midnight + timedelta(days=1, hours=21)),
    ]
    for wins in (labelled, disjoint, local_days, fixed):
        _same(worker_totals(conn, wins), oracle.worker_totals(conn, wins))
        _same(station_totals(conn, wins), oracle.station_totals(conn, wins))
        for station in ("S1", "S2"):
            assert cycle_times(conn, wins, station_id=station) == oracle.cycle_times(
                conn, wins, station_id=station
            )
        _same(model_totals(conn, wins), oracle.model_totals(conn, wins))
