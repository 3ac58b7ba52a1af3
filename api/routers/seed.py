"""``POST /api/seed``: demo data (6 workers, 6 stations, shifts round the clock up to now).

Realistic rates: 30-120 s per unit (one slow station), idle pauses, short
absences and planned breaks, so per-worker figures land at tens of units per
active hour and 60-90 % utilization. The assembly lines make two SKUs (each
with its own target), and the stations that can see rejects report them, so
the dashboard shows quality and OEE (docs/metrics.md, "Units, rejects").
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter

from api.access import AllSites
from api.deps import Admin, Conn, Settings
from api.routers.events import Message
from takt.contract import Event
from takt.store.events import write_events
from takt.store.rollups import refresh_all

router = APIRouter(tags=["admin"])

WORKERS = [
    ("W1", "Alice Johnson"),
    ("W2", "Bob Smith"),
    ("W3", "Carol Diaz"),
    ("W4", "David Chen"),
    ("W5", "Eva Novak"),
    ("W6", "Farid Haddad"),
]
STATIONS = [
    ("S1", "Assembly Line 1", "assembly"),
    ("S2", "Assembly Line 2", "assembly"),
    ("S3", "Quality Inspection", "inspection"),
    ("S4", "Packaging Station", "packaging"),
    ("S5", "Welding Bay", "welding"),
    ("S6", "Finishing Station", "finishing"),
]


# Mean seconds per unit at each station (varying ±20 % per cycle, kept within 30-120 s);
# S5, the welding bay, is the slow one.
CYCLE_S = {"S1": 45.0, "S2": 50.0, "S3": 36.0, "S4": 40.0, "S5": 105.0, "S6": 60.0}
# Three 8-hour shifts round the clock, two workers each: history reaches any moment of the day.
SHIFTS = ((6, ("W1", "W2")), (14, ("W3", "W4")), (22, ("W5", "W6")))
SHIFT = timedelta(hours=8)
# Planned pauses (offset from the shift start, length): two short breaks and lunch, away from the station.
PAUSES = ((timedelta(hours=2), timedelta(minutes=10)), (timedelta(hours=4), timedelta(minutes=30)),
          (timedelta(hours=6), timedelta(minutes=10)))  # fmt: skip
HISTORY_DAYS = 2
# Products and rejects: the assembly lines alternate two SKUs every two hours; stations that report
# a reject count (share of units rejected), the others report none (their units count as good).
SKU_STATIONS = ("S1", "S2")
REJECT_RATE = {"S1": 0.03, "S2": 0.04, "S3": 0.06, "S5": 0.08}
# Targets, in force from the start of the history: a little faster than each station's mean
# cycle, and per SKU at the assembly lines.
TARGET_SHARE = 0.9
SKU_TARGETS = {"A": 40.0, "B": 52.0}


def seed_events(now: datetime, days: int = HISTORY_DAYS) -> list[Event]:
    """Every shift from ``days`` days before ``now``'s UTC day up to ``now``: a believable day each.

    Each worker-shift is drawn from its own random stream (worker and shift start), so a later
    call repeats the same events for the past and only adds what happened since.
    """
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    events: list[Event] = []
    for day in range(-days, 1):
        date = today + timedelta(days=day)
        for index, (hour, workers) in enumerate(SHIFTS):
            start = date + timedelta(hours=hour)
            if start >= now:
                continue
            for j, worker in enumerate(workers):
                station = STATIONS[(2 * index + j + date.toordinal()) % len(STATIONS)][0]
                rng = random.Random(f"{worker}@{start.isoformat()}")  # noqa: S311 - demo data
                events += _shift(worker, station, start, min(start + SHIFT, now), rng)
    return events


def _shift(worker: str, station: str, start: datetime, until: datetime, rng: random.Random) -> list[Event]:
    """One worker's shift at one station: runs of cycles (a unit each), idle pauses, short absences
    and the planned breaks; cut at ``until`` (now, for the shift in progress), where the worker
    is recorded leaving."""
    out: list[Event] = []
    pace = rng.uniform(0.9, 1.15)  # this worker's speed
    idleness = rng.uniform(0.8, 2.6)  # and how long their pauses last
    pauses = [(start + at, start + at + length) for at, length in PAUSES]
    t = start
    end = start + SHIFT
    # Products and rejects from their own stream, so the states and units above stay as they were.
    quality = random.Random(f"quality:{worker}@{start.isoformat()}")  # noqa: S311 - demo data

    def state(at: datetime, kind: str) -> None:
        out.append(_event(at, worker, station, kind, rng))

    while t < end:
        pause = next(((a, b) for a, b in pauses if a <= t < b), None)
        if pause is not None:
            state(t, "absent")
            t = pause[1]
            continue
        state(t, "working")
        for _ in range(rng.randint(3, 12)):
            cycle = min(120.0, max(30.0, CYCLE_S[station] * pace * rng.gauss(1.0, 0.2)))
            t += timedelta(seconds=cycle)
            if t >= end or any(a <= t < b for a, b in pauses):
                break
            out.append(
                _event(t, worker, station, "product_count", rng, count=1, **_product(station, t, quality))
            )
        if t >= end or any(a <= t < b for a, b in pauses):
            continue
        if rng.random() < 0.06:  # a short absence: fetching material, a word with the supervisor
            state(t, "absent")
            t += timedelta(seconds=rng.uniform(60, 300))
        else:
            state(t, "idle")
            t += timedelta(seconds=rng.uniform(15, 120) * idleness)
    # Drawn whole, then cut: the past comes out the same whatever ``until`` is.
    kept = [e for e in out if e.timestamp < until]
    return [*kept, _event(min(end, until), worker, station, "absent", rng)]


def _product(station: str, t: datetime, rng: random.Random) -> dict[str, Any]:
    """A unit's SKU (assembly lines) and reject count (stations that report one)."""
    extra: dict[str, Any] = {}
    if station in SKU_STATIONS:
        extra["sku"] = "A" if t.hour // 2 % 2 == 0 else "B"
    rate = REJECT_RATE.get(station)
    if rate is not None:
        extra["rejected"] = int(rng.random() < rate)
    return extra


def _event(
    t: datetime, worker: str, station: str, kind: str, rng: random.Random, count: int = 0, **extra: Any
) -> Event:
    data: dict[str, Any] = {
        **extra,
        "timestamp": t,
        "worker_id": worker,
        "station_id": station,
        "event_type": kind,
        "confidence": round(rng.uniform(0.8, 0.99), 2),
        "count": count,
        "model_version": "seed",
    }
    return Event.model_validate(data)


@router.post("/seed")
def seed(conn: Conn, settings: Settings, _: Admin, __: AllSites) -> Message:
    with conn.transaction():
        for worker_id, name in WORKERS:
            conn.execute(
                "INSERT INTO workers (worker_id, name, registered) VALUES (%s, %s, true) "
                "ON CONFLICT (worker_id) DO UPDATE SET name = excluded.name, registered = true",
                (worker_id, name),
            )
        for station_id, name, kind in STATIONS:
            conn.execute(
                "INSERT INTO workstations (station_id, name, type, registered) VALUES (%s, %s, %s, true) "
                "ON CONFLICT (station_id) DO UPDATE SET name = excluded.name, type = excluded.type, "
                "registered = true",
                (station_id, name, kind),
            )
        now = datetime.now(UTC)
        since = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=HISTORY_DAYS)
        targets = [(st, "", round(cycle * TARGET_SHARE, 1)) for st, cycle in CYCLE_S.items()]
        targets += [(st, sku, ict) for st in SKU_STATIONS for sku, ict in SKU_TARGETS.items()]
        for station_id, sku, ict in targets:
            # Repeats keep what is there (a supervisor may have changed them since).
            conn.execute(
                "INSERT INTO station_targets (station_id, sku, effective_from, ideal_cycle_time_s, set_by) "
                "SELECT %(st)s, %(sku)s, %(at)s, %(ict)s, 'seed' WHERE NOT EXISTS "
                "(SELECT 1 FROM station_targets WHERE station_id = %(st)s AND sku = %(sku)s)",
                {"st": station_id, "sku": sku, "at": since, "ict": ict},
            )
    write_events(conn, seed_events(now))
    refresh_all(conn, max_gap_s=settings.max_state_gap_s)
    return Message(message="Database seeded successfully")
