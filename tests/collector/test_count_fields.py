"""`rejected` and `sku` of product_count events are stored by both write paths; re-sends stay duplicates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from takt.contract import Event, EventType
from takt.store.events import WriteMethod, insert_events


def _count(i: int, **extra: object) -> Event:
    return Event.model_validate(
        {
            "event_id": uuid.UUID(int=i + 1),
            "timestamp": datetime(2026, 3, 2, 9, tzinfo=UTC) + timedelta(seconds=i),
            "worker_id": "w1",
            "station_id": "st-1",
            "event_type": EventType.PRODUCT_COUNT,
            "confidence": 0.9,
            "count": 5,
            **extra,
        }
    )


@pytest.mark.parametrize("method", list(WriteMethod))
def test_both_paths_store_rejected_and_sku(database: str, method: WriteMethod) -> None:
    events = [_count(0), _count(1, rejected=2, sku="red"), _count(2, sku="blue"), _count(3, rejected=0)]
    with psycopg.connect(database) as conn:
        first = insert_events(conn, events, method)
        again = insert_events(conn, events, method)
        rows = conn.execute("SELECT rejected, sku FROM events ORDER BY event_id").fetchall()
        # The same id with another reject count is another event's content: a conflict, not stored.
        changed = insert_events(conn, [_count(1, rejected=3, sku="red")], method)
        kept = conn.execute("SELECT rejected FROM events WHERE event_id = %s", (uuid.UUID(int=2),)).fetchone()
    assert (first.inserted, again.duplicates) == (4, 4)
    assert rows == [(None, None), (2, "red"), (None, "blue"), (0, None)]
    assert len(changed.conflicts) == 1 and "rejected" in changed.conflicts[0].reason
    assert kept == (2,)
