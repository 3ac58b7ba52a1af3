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
