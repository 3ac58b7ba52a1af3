"""HTTP ingestion through the collector's idempotent writer."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, ValidationError

from api.deps import Admin, Conn, Ingest
from collector.store import DeadLetter, insert_dead_letters, write_events
from takt.contract import Event
from takt.contract.codec import describe_validation_error, raw_json
from takt.contract.events import MAX_EVENTS_PER_BATCH

router = APIRouter(tags=["events"])


class Message(BaseModel):
    message: str


class ItemError(BaseModel):
    index: int
    error: str


class BatchResult(BaseModel):
    message: str
    success_count: int
    total_count: int
    errors: list[ItemError]


@router.post("/events", status_code=201)
def ingest_event(event: Event, conn: Conn, _: Ingest) -> Message:
    write_events(conn, [event])
    return Message(message="Event ingested successfully")


@router.post("/events/batch")
def ingest_batch(
    conn: Conn,
    _: Ingest,
    items: list[dict[str, Any]] = Body(max_length=MAX_EVENTS_PER_BATCH),  # noqa: B008
) -> BatchResult:
    """Valid items are stored (duplicates count as success); invalid ones are reported and dead-lettered."""
    valid: list[Event] = []
    errors: list[ItemError] = []
    letters: list[DeadLetter] = []
    for index, item in enumerate(items):
        try:
            valid.append(Event.model_validate(item))
        except ValidationError as exc:
            reason = describe_validation_error(exc)
            errors.append(ItemError(index=index, error=reason))
            letters.append(
                DeadLetter(source="http", reason=reason, payload=raw_json(item), event_index=index)
            )
    with conn.transaction():
        if valid:
            write_events(conn, valid)
        insert_dead_letters(conn, letters)
    n, m = len(valid), len(items)
    return BatchResult(
        message=f"{n}/{m} events ingested successfully", success_count=n, total_count=m, errors=errors
    )


@router.delete("/events/{event_id}")
def delete_event(event_id: uuid.UUID, conn: Conn, _: Admin) -> Message:
    """Remove an event; the rollups are re-derived around it."""
    with conn.transaction():
        # The invalidation spans the deleted state's whole interval, so every
        # hour it reached is rebuilt.
        rows = conn.execute(
            "DELETE FROM events WHERE event_id = %s RETURNING worker_id, station_id, ts, "
            "ts + coalesce(effective_duration_s, 0) * interval '1 second'",
            (event_id,),
        ).fetchall()
        for worker, station, ts, end in rows:
            conn.execute(
                "INSERT INTO event_invalidations (worker_id, station_id, min_ts, max_ts) "
                "VALUES (%s, %s, %s, %s)",
                (worker, station, ts, end),
            )
    if not rows:
        raise HTTPException(404, f"no event {event_id}")
    return Message(message="Event deleted")
