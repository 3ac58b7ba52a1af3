"""Gateway status and sequence-number audit, for supervisors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.access import Reader
from api.deps import Conn, Supervisor
from takt.store.audit import open_gaps, seq_reuse

router = APIRouter(tags=["gateways"])


class Gateway(BaseModel):
    gateway_id: str
    site_id: str | None
    state: str
    last_seen: datetime | None
    status: dict[str, Any]


class GatewayGaps(BaseModel):
    gateway_id: str
    gaps: list[tuple[int, int]]
    missing: int
    reused: int = Field(
        default=0,
        description="New events numbered with a seq this gateway had already used for another event "
        "(its numbering went backwards or repeated, e.g. a reset buffer); 0 when healthy.",
    )
    last_reused_seq: int | None = Field(default=None, description="The latest such seq.")


@router.get("/gateways")
def gateways(conn: Conn, _: Supervisor, access: Reader) -> list[Gateway]:
    """Every gateway's last status (a site-scoped token: its sites' gateways only)."""
    sites = None if access.sites is None else sorted(access.sites)
    rows = conn.execute(
        "SELECT gateway_id, site_id, state, last_seen, status FROM gateways "
        "WHERE %(s)s::text[] IS NULL OR site_id = ANY(%(s)s::text[]) ORDER BY gateway_id",
        {"s": sites},
    ).fetchall()
    return [Gateway(gateway_id=r[0], site_id=r[1], state=r[2], last_seen=r[3], status=r[4]) for r in rows]


@router.get("/audit/gaps")
def audit_gaps(conn: Conn, _: Supervisor, access: Reader) -> list[GatewayGaps]:
    """Per gateway: seq numbers never received below its highest, and seq numbers it used twice.

    A site-scoped token sees the gateways registered at its sites only."""
    sites = None if access.sites is None else sorted(access.sites)
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT r.gateway_id FROM gateway_seq_ranges r "
            "WHERE %(s)s::text[] IS NULL OR r.gateway_id IN "
            "(SELECT gateway_id FROM gateways WHERE site_id = ANY(%(s)s::text[])) ORDER BY 1",
            {"s": sites},
        )
    ]
    reuse = seq_reuse(conn)
    all_gaps = open_gaps(conn)
    out = []
    for gateway_id in ids:
        gaps = all_gaps.get(gateway_id, [])
        reused, last = reuse.get(gateway_id, (0, None))
        out.append(
            GatewayGaps(
                gateway_id=gateway_id,
                gaps=gaps,
                missing=sum(b - a + 1 for a, b in gaps),
                reused=reused,
                last_reused_seq=last,
            )
        )
    return out
