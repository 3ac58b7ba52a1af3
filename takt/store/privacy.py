"""The privacy audit: an append-only record of every read of per-person data (docs/privacy.md).

Rows are only ever inserted (migration 0011's trigger refuses UPDATE, DELETE and
TRUNCATE). The API records a read before the answer's first byte leaves
(``api.middleware.Guard``); the CLI records privacy actions it takes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from takt.store.events import WIDEN_QUEUED

# The response header a route sets on an answer that carries per-person data; its value names
# the worker asked about, or "*" for every visible worker. The API's front door records the read
# and removes the header.
AUDIT_HEADER = "x-takt-per-person"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    resource: str
    subject: str | None
    sites: list[str] | None
    detail: dict[str, Any]


def record(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    role: str,
    action: str,
    resource: str,
    subject: str | None = None,
    sites: Sequence[str] | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO privacy_audit (actor, role, action, resource, subject, sites, detail) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)",
        (
            actor,
            role,
            action,
            resource,
            subject,
            None if sites is None else sorted(sites),
            json.dumps(detail or {}),
        ),
    )


def read_audit(
    conn: psycopg.Connection[Any],
    *,
    lo: datetime | None = None,
    hi: datetime | None = None,
    subject: str | None = None,
    limit: int = 10_000,
) -> list[AuditRecord]:
    """Records in [lo, hi) (oldest first), optionally about one worker."""
    rows = conn.execute(
        "SELECT id, at, actor, role, action, resource, subject, sites, detail FROM privacy_audit "
        "WHERE (%(lo)s::timestamptz IS NULL OR at >= %(lo)s) "
        "AND (%(hi)s::timestamptz IS NULL OR at < %(hi)s) "
        "AND (%(subject)s::text IS NULL OR subject = %(subject)s) ORDER BY id LIMIT %(limit)s",
        {"lo": lo, "hi": hi, "subject": subject, "limit": limit},
    ).fetchall()
    return [AuditRecord(*r) for r in rows]


CSV_FIELDS = ("id", "at", "actor", "role", "action", "resource", "subject", "sites", "detail")


def to_csv(records: Sequence[AuditRecord]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in records:
        writer.writerow(
            [
                r.id,
                r.at.isoformat(),
                r.actor,
                r.role,
                r.action,
                r.resource,
                r.subject or "",
                ";".join(r.sites or []),
                json.dumps(r.detail, sort_keys=True),
            ]
        )
    return out.getvalue()


# -- erasure -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Erased:
    events: int
    dead_letters: int
    roster_entry: bool


def erase_worker(
    conn: psycopg.Connection[Any], worker_id: str, *, site_id: str | None = None, actor: str
) -> Erased:
    """Remove a worker's events (at one site, or everywhere) and what is derived from them.

    In one transaction: the events go, their ids are freed, the hours they touched are queued
    for the rollups to be rebuilt (the refresher, or :func:`takt.store.rollups.refresh_all`,
    then derives every figure as if they had never been stored); dead letters naming the worker
    go too, and the roster entry when no event of the worker is left. The audit records that it
    happened (not what was erased). Label samples are drawn from events at export time, so
    none are left behind.
    """
    if worker_id == "unknown":
        raise ValueError("'unknown' is not a person: nothing to erase")
    with conn.transaction():
        rows = conn.execute(
            f"""
            WITH gone AS (
                DELETE FROM events WHERE worker_id = %(w)s AND (%(s)s::text IS NULL OR site_id = %(s)s)
                RETURNING event_id, station_id, ts,
                          ts + coalesce(effective_duration_s, 0) * interval '1 second' AS end_ts
            ), freed AS (
                DELETE FROM event_ids i USING gone g WHERE i.event_id = g.event_id RETURNING 1
            ), queued AS (
                INSERT INTO event_invalidations AS i (worker_id, station_id, min_ts, max_ts)
                SELECT %(w)s, station_id, min(ts), max(end_ts) FROM gone GROUP BY station_id
                ORDER BY station_id{WIDEN_QUEUED}
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM freed), (SELECT count(*) FROM queued)
            """,
            {"w": worker_id, "s": site_id},
        ).fetchone()
        events = int(rows[0]) if rows else 0
        # A dead letter is the raw payload that failed: drop those naming the worker (and the site).
        quoted = json.dumps(worker_id)
        letters = conn.execute(
            "DELETE FROM dead_letters WHERE position(convert_to(%(q)s, 'UTF8') IN payload) > 0 "
            "AND (%(s)s::text IS NULL OR position(convert_to(%(qs)s, 'UTF8') IN payload) > 0) RETURNING 1",
            {"q": quoted, "s": site_id, "qs": json.dumps(site_id) if site_id else None},
        ).fetchall()
        roster = conn.execute(
            "DELETE FROM workers w WHERE worker_id = %s AND NOT EXISTS "
            "(SELECT 1 FROM events e WHERE e.worker_id = w.worker_id) RETURNING 1",
            (worker_id,),
        ).fetchone()
        record(
            conn,
            actor=actor,
            role="admin",
            action="erase",
            resource="takt privacy erase",
            subject=worker_id,
            sites=None if site_id is None else [site_id],
            detail={"events": events, "dead_letters": len(letters), "roster_entry": roster is not None},
        )
    return Erased(events, len(letters), roster is not None)


# -- retention ---------------------------------------------------------------------------------
def delete_old_events(
    conn: psycopg.Connection[Any], site_id: str, before: datetime, *, batch: int = 10_000
) -> int:
    """Remove one site's raw events older than ``before``, ``batch`` rows per transaction.

    The rollups are kept (they are not invalidated): figures for those hours stay as they were
    rolled up, and their raw events are gone. Returns how many were removed.
    """
    total = 0
    while True:
        with conn.transaction():
            rows = conn.execute(
                """
                WITH doomed AS (
                    SELECT event_id, ts FROM events WHERE site_id = %(s)s AND ts < %(t)s LIMIT %(n)s
                ), gone AS (
                    DELETE FROM events e USING doomed d WHERE e.event_id = d.event_id AND e.ts = d.ts
                    RETURNING e.event_id
                ), freed AS (
                    DELETE FROM event_ids i USING gone g WHERE i.event_id = g.event_id RETURNING 1
                )
                SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM freed)
                """,
                {"s": site_id, "t": before, "n": batch},
            ).fetchone()
        removed = int(rows[0]) if rows else 0
        total += removed
        if removed < batch:
            return total


def delete_old_dead_letters(conn: psycopg.Connection[Any], before: datetime) -> int:
    """Remove dead letters received before ``before``."""
    with conn.transaction():
        return len(
            conn.execute("DELETE FROM dead_letters WHERE received_at < %s RETURNING 1", (before,)).fetchall()
        )
