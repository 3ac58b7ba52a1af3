"""``POST /api/seed``: demo data (6 workers, 6 stations, 2 days of events)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter

from api.deps import Admin, Conn, Settings
from api.routers.events import Message
from collector.rollups import refresh_all
from collector.store import write_events
from takt.contract import Event

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


def seed_events(today: datetime, rng: random.Random) -> list[Event]:
    """Two 08:00-17:00 shifts before ``today``: states every few minutes, units while working."""
    events: list[Event] = []
    for day in (2, 1):
        start = (today - timedelta(days=day)).replace(hour=8, minute=0, second=0, microsecond=0)
        for i, (worker, _) in enumerate(WORKERS):
            station = STATIONS[(i + day) % len(STATIONS)][0]
            t = start
            while t < start + timedelta(hours=9):
                state = rng.choices(["working", "idle", "absent"], weights=[80, 15, 5])[0]
                events.append(_event(t, worker, station, state, rng))
                step = timedelta(minutes=rng.randint(3, 9))
                if state == "working":
                    for k in range(rng.randint(0, 2)):
                        at = t + step * (k + 1) / 3
                        events.append(_event(at, worker, station, "product_count", rng, count=1))
                t += step
            events.append(_event(t, worker, station, "absent", rng))
    return events


def _event(t: datetime, worker: str, station: str, kind: str, rng: random.Random, count: int = 0) -> Event:
    data: dict[str, Any] = {
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
def seed(conn: Conn, settings: Settings, _: Admin) -> Message:
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
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    write_events(conn, seed_events(today, random.Random(today.toordinal())))  # noqa: S311 - demo data
    refresh_all(conn, max_gap_s=settings.max_state_gap_s)
    return Message(message="Database seeded successfully")
