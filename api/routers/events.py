"""HTTP ingestion through the collector's idempotent writer."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, ValidationError

from api.deps import Admin, Conn, Ingest
from api.security import Caller
from collector.store import Conflict, DeadLetter, insert_dead_letters, insert_events
from takt.contract import Event
from takt.contract.codec import describe_validation_error, raw_json
from takt.contract.events import MAX_EVENTS_PER_BATCH, origin_problem, with_origin

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


def _claim(event: Event, caller: Caller) -> Event | str:
    """The event as its bound gateway token vouches for it, or why that token may not send it.

    A gateway token stores events of its own gateway and site only (as the
    broker's ACL allows a gateway to publish only there); missing
    ``gateway_id``/``site_id`` are taken from the token. Admins may send any.
    """
    if caller.gateway_id is None or caller.site_id is None:
        return event
    problem = origin_problem(event, site_id=caller.site_id, gateway_id=caller.gateway_id)
    if problem is not None:
        return f"{problem} (this token is bound to {caller.gateway_id!r} / {caller.site_id!r})"
    return with_origin(event, site_id=caller.site_id, gateway_id=caller.gateway_id)


def _conflict_letter(conflict: Conflict, index: int | None = None) -> DeadLetter:
    return DeadLetter(
        source="http",
        reason=conflict.reason,
        payload=conflict.payload,
        gateway_id=conflict.gateway_id,
        event_index=index,
        seq=conflict.seq,
    )


@router.post(
    "/events",
    status_code=201,
    responses={
        403: {"description": "The event names another gateway or site than the gateway token's."},
        409: {"description": "Its event_id is stored already with other content (dead-lettered)."},
    },
)
def ingest_event(event: Event, conn: Conn, caller: Ingest) -> Message:
    """Store one event; sending it again (same id, same content) is harmless."""
    claimed = _claim(event, caller)
    if isinstance(claimed, str):
        raise HTTPException(403, claimed)
    with conn.transaction():
        result = insert_events(conn, [claimed])
        insert_dead_letters(conn, [_conflict_letter(c) for c in result.conflicts])
    if result.conflicts:
        raise HTTPException(409, result.conflicts[0].reason)
    return Message(message="Event ingested successfully")


@router.post("/events/batch")
def ingest_batch(
    conn: Conn,
    caller: Ingest,
    items: list[dict[str, Any]] = Body(max_length=MAX_EVENTS_PER_BATCH),  # noqa: B008
) -> BatchResult:
    """Valid items are stored (duplicates count as success); invalid ones are reported and dead-lettered.

    So are items a gateway token may not send (another gateway or site) and
    items whose event_id is stored already with other content (conflicts).
    """
    valid: list[tuple[int, Event]] = []
    errors: list[ItemError] = []
    letters: list[DeadLetter] = []
    for index, item in enumerate(items):
        try:
            claimed = _claim(Event.model_validate(item), caller)
        except ValidationError as exc:
            claimed = describe_validation_error(exc)
        if isinstance(claimed, str):
            errors.append(ItemError(index=index, error=claimed))
            letters.append(
                DeadLetter(source="http", reason=claimed, payload=raw_json(item), event_index=index)
            )
        else:
            valid.append((index, claimed))
    with conn.transaction():
        result = insert_events(conn, [event for _, event in valid])
        # A conflicting item is the later of two with its id: within the batch, the last one.
        where = {event.event_id: index for index, event in valid}
        for conflict in result.conflicts:
            index = where[conflict.event_id]
            errors.append(ItemError(index=index, error=conflict.reason))
            letters.append(_conflict_letter(conflict, index))
        insert_dead_letters(conn, letters)
    errors.sort(key=lambda e: e.index)
    n, m = len(valid) - len(result.conflicts), len(items)
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
        # Its id is free again: sending the event once more stores it anew.
        conn.execute("DELETE FROM event_ids WHERE event_id = %s", (event_id,))
        for worker, station, ts, end in rows:
            conn.execute(
                "INSERT INTO event_invalidations (worker_id, station_id, min_ts, max_ts) "
                "VALUES (%s, %s, %s, %s)",
                (worker, station, ts, end),
            )
    if not rows:
        raise HTTPException(404, f"no event {event_id}")
    return Message(message="Event deleted")
