"""Writing a :class:`~collector.pipeline.Plan` inside the caller's transaction."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from collector.pipeline import SOURCE, Plan
from takt.contract import events_topic
from takt.store.events import (
    Conflict,
    DeadLetter,
    WriteMethod,
    WriteResult,
    insert_copy_batch,
    insert_dead_letters,
    insert_events,
    record_seqs_many,
)

# Later status wins unless it is older than the one stored (a retained
# message redelivered after a newer heartbeat).
_UPSERT_STATUS = """
INSERT INTO gateways AS g (gateway_id, site_id, state, last_seen, status)
VALUES (%s, %s, %s, now(), %s)
ON CONFLICT (gateway_id) DO UPDATE SET
    site_id = EXCLUDED.site_id, state = EXCLUDED.state, last_seen = now(), status = EXCLUDED.status
WHERE g.status->>'timestamp' IS NULL OR EXCLUDED.status->>'timestamp' IS NULL
   OR (EXCLUDED.status->>'timestamp')::timestamptz >= (g.status->>'timestamp')::timestamptz
"""
_TOUCH_GATEWAYS = """
INSERT INTO gateways AS g (gateway_id, site_id, last_seen)
SELECT g, s, now() FROM unnest(%s::text[], %s::text[]) AS t(g, s)
ON CONFLICT (gateway_id) DO UPDATE SET last_seen = EXCLUDED.last_seen
"""


def write_plan(
    conn: psycopg.Connection[Any], plan: Plan, method: WriteMethod = WriteMethod.COPY
) -> WriteResult:
    """Events, dead letters, seq audit and gateway registry of one batch; caller commits.

    Events refused as conflicts (their ids are stored with other content) are
    dead-lettered here with the reason; the caller acknowledges them as
    rejected (``plan.acks(..., result.conflicts)``).
    """
    if plan.copy is not None and method is WriteMethod.COPY:
        result = insert_copy_batch(conn, plan.copy)
    else:
        result = insert_events(conn, plan.events, method)
    letters = [*plan.dead_letters, *(conflict_letter(c) for c in result.conflicts)]
    if letters:
        insert_dead_letters(conn, letters)
    record_seqs_many(conn, plan.seqs, result.fresh_seqs)
    if plan.seen:
        gateways = sorted(plan.seen)
        conn.execute(_TOUCH_GATEWAYS, (gateways, [plan.seen[g] for g in gateways]))
    for update in plan.statuses:
        status = update.status.model_dump(mode="json", by_alias=True, exclude_none=True)
        conn.execute(
            _UPSERT_STATUS, (update.gateway_id, update.site_id, update.status.state.value, Jsonb(status))
        )
    return result


def conflict_letter(conflict: Conflict) -> DeadLetter:
    topic = (
        events_topic(conflict.site_id, conflict.gateway_id)
        if conflict.site_id is not None and conflict.gateway_id is not None
        else None
    )
    return DeadLetter(
        SOURCE,
        conflict.reason,
        conflict.payload,
        topic=topic,
        gateway_id=conflict.gateway_id,
        seq=conflict.seq,
    )
