"""HTTP ingestion through the collector's idempotent writer.

Events go through the same validation as over MQTT (:func:`takt.contract.validate_events`:
the contract's model, then the plausibility window ``TAKT_MAX_CLOCK_SKEW_S`` /
``TAKT_MAX_EVENT_AGE_DAYS``). A rejected event is dead-lettered (source ``http``)
with its reason; in a batch each item is judged on its own, so one bad item
never costs its neighbours.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, Field

from api.access import AllSites
from api.deps import Admin, Conn, Ingest, Settings
from api.security import Caller
from takt.contract import Event, validate_events
from takt.contract.codec import raw_json
from takt.contract.events import MAX_EVENTS_PER_BATCH, origin_problem, with_origin
from takt.store.events import INVALIDATE, Conflict, DeadLetter, insert_dead_letters, insert_events

router = APIRouter(tags=["events"])


class Message(BaseModel):
    message: str


class ItemAccepted(BaseModel):
    index: int = Field(description="Position of the item in the request")
    event_id: uuid.UUID = Field(description="The stored event's id (derived from content when absent)")


class ItemError(BaseModel):
    index: int = Field(description="Position of the item in the request")
    error: str = Field(description="Why it was rejected; the item is dead-lettered with this reason")
    event_id: uuid.UUID | None = Field(default=None, description="The item's event_id, when readable")
    seq: int | None = Field(default=None, description="The item's seq, when readable")


class BatchResult(BaseModel):
    """Per-item outcome of a batch: every item is either in ``accepted`` or in ``errors``."""

    message: str
    success_count: int
    total_count: int
    accepted: list[ItemAccepted] = Field(description="Stored, or already stored (a re-send)")
    errors: list[ItemError] = Field(description="Rejected and dead-lettered, with the reason")


def _readable(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else None


def _item_error(index: int, item: Any, reason: str) -> ItemError:
    raw_id, raw_seq = _readable(item, "event_id"), _readable(item, "seq")
    try:
        event_id = uuid.UUID(raw_id) if isinstance(raw_id, str) else None
    except ValueError:
        event_id = None
    seq = (
        raw_seq
        if isinstance(raw_seq, int) and not isinstance(raw_seq, bool) and 0 <= raw_seq < 2**63
        else None
    )
    return ItemError(index=index, error=reason, event_id=event_id, seq=seq)


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
        422: {"description": "Invalid, or outside the plausibility window (dead-lettered)."},
    },
)
def ingest_event(event: Event, conn: Conn, settings: Settings, caller: Ingest) -> Message:
    """Store one event; sending it again (same id, same content) is harmless.

    One outside the plausibility window is dead-lettered and answered 422.
    """
    problem = settings.plausibility.problem(event.timestamp, datetime.now(UTC))
    if problem is not None:
        payload = event.model_dump_json(exclude_none=True).encode()
        insert_dead_letters(conn, [DeadLetter(source="http", reason=problem, payload=payload)])
        raise HTTPException(422, problem)
    claimed = _claim(event, caller)
    if isinstance(claimed, str):
        raise HTTPException(403, claimed)
    with conn.transaction():
        result = insert_events(conn, [claimed])
        insert_dead_letters(conn, [_conflict_letter(c) for c in result.conflicts])
    if result.conflicts:
        raise HTTPException(409, result.conflicts[0].reason)
    return Message(message="Event ingested successfully")


@router.post(
    "/events/batch",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "maxItems": MAX_EVENTS_PER_BATCH,
                        "items": {"$ref": "#/components/schemas/Event"},
                        "description": "Events; any item that is not a valid event is rejected alone.",
                    }
                }
            },
        }
    },
)
def ingest_batch(
    conn: Conn,
    settings: Settings,
    caller: Ingest,
    items: list[Any] = Body(max_length=MAX_EVENTS_PER_BATCH),  # noqa: B008
) -> BatchResult:
    """Valid items are stored (duplicates count as success); each invalid one is reported and dead-lettered.

    Answers 200 whenever the body is a JSON array of at most 2,000 items, with
    each item's outcome: ``accepted`` (index and event id) or ``errors`` (index,
    reason, and the item's event_id/seq when readable). An item that is not an
    object (``42``, ``null``), fails the contract, lies outside the
    plausibility window, names a worker against its site's privacy level
    (``TAKT_PRIVACY``: not a pseudonym at a pseudonymous site, not ``unknown``
    at a stations-only one; the id is withheld from the dead letter), names
    another gateway or site than a gateway token's, or reuses a stored
    event_id with other content (a conflict) is rejected on its own.
    """
    checked, rejected = validate_events(
        items, now=datetime.now(UTC), window=settings.plausibility, levels=settings.privacy_levels()
    )
    errors = [_item_error(r.index, r.raw, r.reason) for r in rejected]
    letters = [
        DeadLetter(source="http", reason=r.reason, payload=raw_json(r.raw), event_index=r.index, seq=e.seq)
        for r, e in zip(rejected, errors, strict=True)
    ]
    events: list[tuple[int, Event]] = []
    for index, event in checked:
        claimed = _claim(event, caller)
        if isinstance(claimed, str):
            errors.append(_item_error(index, items[index], claimed))
            letters.append(
                DeadLetter(source="http", reason=claimed, payload=raw_json(items[index]), event_index=index)
            )
        else:
            events.append((index, claimed))
    with conn.transaction():
        result = insert_events(conn, [event for _, event in events])
        # A conflicting item is the later of two with its id: within the batch, the last one.
        where = {event.event_id: index for index, event in events}
        conflicted: set[int] = set()
        for conflict in result.conflicts:
            index = where[conflict.event_id]
            conflicted.add(index)
            errors.append(_item_error(index, items[index], conflict.reason))
            letters.append(_conflict_letter(conflict, index))
        insert_dead_letters(conn, letters)
    events = [(i, e) for i, e in events if i not in conflicted]
    n, m = len(events), len(items)
    return BatchResult(
        message=f"{n}/{m} events ingested successfully",
        success_count=n,
        total_count=m,
        accepted=[ItemAccepted(index=i, event_id=e.event_id) for i, e in events],
        errors=sorted(errors, key=lambda e: e.index),
    )


@router.delete("/events/{event_id}")
def delete_event(event_id: uuid.UUID, conn: Conn, _: Admin, __: AllSites) -> Message:
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
        if rows:
            conn.execute(
                INVALIDATE,
                {
                    "workers": [r[0] for r in rows],
                    "stations": [r[1] for r in rows],
                    "min_ts": [r[2] for r in rows],
                    "max_ts": [r[3] for r in rows],
                },
            )
    if not rows:
        raise HTTPException(404, f"no event {event_id}")
    return Message(message="Event deleted")
