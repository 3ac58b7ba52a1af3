"""Units, rejects and SKUs per station (api.metrics.units) equal the raw scan (tests/oracle.py).

Random labelled windows (edges inside hours, whole hours, several windows per
label), units with and without SKU and reject counts, late events after some
refresh rounds (the rest pending, read-your-writes) and an erasure.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.metrics.units import unit_totals
from api.settings import ApiSettings
from takt.contract import Event
from takt.store.events import write_events
from takt.store.privacy import erase_worker
from takt.store.rollups import ROLLUP_TABLES, refresh_all
from tests import oracle

BASE = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
GAP = 600.0

unit_st = st.fixed_dictionaries(
    {
        "offset": st.integers(-3 * 3600, 6 * 3600) | st.integers(-30 * 3600, 40 * 3600),
        "worker": st.sampled_from(["W1", "W2", "unknown"]),
        "station": st.sampled_from(["S1", "S2", "S3"]),
        "kind": st.sampled_from(["product_count", "product_count", "product_count", "working"]),
        "count": st.integers(0, 6),
        "reject": st.none() | st.integers(0, 6),
        "sku": st.sampled_from([None, None, "A", "B"]),
        "site": st.sampled_from(["s1", "s1", "s2", None]),
        "shadow": st.sampled_from([False, False, False, True]),
    }
)
# Short windows (hours and their parts) and long ones (whole UTC days, a day less its hours).
window_st = st.tuples(
    st.integers(0, 2), st.integers(-4 * 3600, 4 * 3600), st.integers(1, 10 * 3600)
) | st.tuples(st.integers(0, 2), st.integers(-32 * 3600, 0), st.integers(13 * 3600, 60 * 3600))


def _event(d: dict[str, Any]) -> Event:
    units = d["kind"] == "product_count"
    body: dict[str, Any] = {
        "timestamp": (BASE + timedelta(seconds=d["offset"])).isoformat(),
        "worker_id": d["worker"],
        "station_id": d["station"],
        "event_type": d["kind"],
        "confidence": 0.9,
        "count": d["count"] if units else 0,
        "shadow": d["shadow"],
        "model_version": "m1",
    }
    if d["site"] is not None:
        body["site_id"] = d["site"]
    if units and d["sku"] is not None:
        body["sku"] = d["sku"]
    if units and d["reject"] is not None:
        body["rejected"] = min(d["reject"], d["count"])
    return Event.model_validate(body)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    early=st.lists(unit_st, min_size=8, max_size=40),
    late=st.lists(unit_st, min_size=1, max_size=20),
    windows=st.lists(window_st, min_size=1, max_size=4),
    refresh_late=st.booleans(),
    erase=st.booleans(),
    site=st.sampled_from([None, None, "s1"]),
    station=st.sampled_from([None, None, "S1"]),
)
def test_unit_totals_equal_raw_scan(
    settings: ApiSettings,
    early: list[dict[str, Any]],
    late: list[dict[str, Any]],
    windows: list[tuple[int, int, int]],
    refresh_late: bool,
    erase: bool,
    site: str | None,
    station: str | None,
) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE events, event_ids, event_invalidations, {', '.join(ROLLUP_TABLES)}")
        write_events(conn, [_event(d) for d in early])
        refresh_all(conn, max_gap_s=GAP)
        # Late events into hours already rolled up, then an erasure (which may queue the key-hour
        # the write just queued, in the same second); refreshed or left pending.
        if late:
            write_events(conn, [_event(d) for d in late])
        if erase:
            erase_worker(conn, "W2", actor="test")
        if refresh_late:
            refresh_all(conn, max_gap_s=GAP)
        labelled = [
            (label, BASE + timedelta(seconds=a), BASE + timedelta(seconds=a + n)) for label, a, n in windows
        ]
        # Windows of one label must not overlap (the engine's contract): keep the first of overlaps.
        kept: list[tuple[int, datetime, datetime]] = []
        for w in labelled:
            if all(k[0] != w[0] or k[2] <= w[1] or w[2] <= k[1] for k in kept):
                kept.append(w)
        got = unit_totals(conn, kept, site_id=site, station_id=station)
        expected = oracle.unit_totals(conn, kept, site_id=site, station_id=station)
        assert {k: (v.units, v.rejected, v.reported, v.events) for k, v in got.items()} == expected
