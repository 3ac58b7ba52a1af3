"""Gateway status and sequence-number audit, for supervisors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

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
def gateways(conn: Conn, _: Supervisor) -> list[Gateway]:
    rows = conn.execute(
        "SELECT gateway_id, site_id, state, last_seen, status FROM gateways ORDER BY gateway_id"
    ).fetchall()
    return [Gateway(gateway_id=r[0], site_id=r[1], state=r[2], last_seen=r[3], status=r[4]) for r in rows]


@router.get("/audit/gaps")
def audit_gaps(conn: Conn, _: Supervisor) -> list[GatewayGaps]:
    """Per gateway: seq numbers never received below its highest, and seq numbers it used twice."""
    ids = [r[0] for r in conn.execute("SELECT DISTINCT gateway_id FROM gateway_seq_ranges ORDER BY 1")]
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
