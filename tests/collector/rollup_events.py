"""Events for the rollup tests: minutes after T0, one worker and station unless told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from takt.contract import Event

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
GAP = 600.0


def ev(minute: float, kind: str = "working", worker: str = "W1", station: str = "S1", **kw: Any) -> Event:
    return Event.model_validate(
        {
            "timestamp": T0 + timedelta(minutes=minute),
            "worker_id": worker,
            "station_id": station,
            "event_type": kind,
            "confidence": kw.pop("confidence", 0.9),
            **kw,
        }
    )
