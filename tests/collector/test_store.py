"""The shared writer: COPY text lines and UNNEST store the same values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from collector.store import WriteMethod, insert_events
from takt.contract import Event, EventType


def _events() -> list[Event]:
    now = datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)
    tricky = "\\N back\\slash é ✓"
    return [
        Event(
            event_id=uuid.uuid4(),
            timestamp=now - timedelta(seconds=i),
            worker_id=f"w:{i}@x",
            station_id="s.1",
            event_type=EventType.PRODUCT_COUNT if i % 2 else EventType.IDLE,
            confidence=0.1 + i / 10,
            count=i,
            duration_s=None if i % 2 else 1.5 + i,
            model_version=tricky if i == 0 else None,
            config_version="\\N" if i == 1 else None,
            camera_id="cam-1" if i else None,
            seq=i or None,
            shadow=i == 2,
        )
        for i in range(4)
    ]


@pytest.mark.parametrize("method", list(WriteMethod))
def test_methods_store_identical_values(database: str, method: WriteMethod) -> None:
    events = _events()
    with psycopg.connect(database) as conn:
        first = insert_events(conn, events, method)
        again = insert_events(conn, events, method)
        rows = conn.execute(
            "SELECT event_id, ts, worker_id, event_type, confidence, count, duration_s, "
            "effective_duration_s, model_version, config_version, camera_id, seq, shadow FROM events"
        ).fetchall()
    assert (first.inserted, again.inserted, again.duplicates) == (4, 0, 4)
    stored: dict[Any, tuple[Any, ...]] = {r[0]: r[1:] for r in rows}
    for e in events:
        ts, worker, etype, conf, count, dur, eff, model, config, camera, seq, shadow = stored[e.event_id]
        assert (ts, worker, etype, count, dur, model, config, camera, seq, shadow) == (
            e.timestamp,
            e.worker_id,
            e.event_type.value,
            e.count,
            e.duration_s,
            e.model_version,
            e.config_version,
            e.camera_id,
            e.seq,
            e.shadow,
        )
        assert conf == pytest.approx(e.confidence, rel=1e-6)
        assert eff == (e.duration_s if e.is_state else None)


@pytest.mark.parametrize("method", list(WriteMethod))
def test_tiny_confidence_is_stored_exactly(database: str, method: WriteMethod) -> None:
    """Any confidence the contract accepts fits its column (a real would underflow on 1e-125)."""
    event = _events()[0].model_copy(update={"event_id": uuid.uuid4(), "confidence": 1e-125})
    with psycopg.connect(database) as conn:
        assert insert_events(conn, [event], method).inserted == 1
        row = conn.execute("SELECT confidence FROM events WHERE event_id = %s", (event.event_id,)).fetchone()
    assert row == (1e-125,)
