"""Gateway status and sequence-number audit, for supervisors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import Conn, Supervisor
from collector.store import seq_gaps

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


@router.get("/gateways")
def gateways(conn: Conn, _: Supervisor) -> list[Gateway]:
    rows = conn.execute(
        "SELECT gateway_id, site_id, state, last_seen, status FROM gateways ORDER BY gateway_id"
    ).fetchall()
    return [Gateway(gateway_id=r[0], site_id=r[1], state=r[2], last_seen=r[3], status=r[4]) for r in rows]


@router.get("/audit/gaps")
def audit_gaps(conn: Conn, _: Supervisor) -> list[GatewayGaps]:
    ids = [r[0] for r in conn.execute("SELECT DISTINCT gateway_id FROM gateway_seq_ranges ORDER BY 1")]
    out = []
    for gateway_id in ids:
        gaps = seq_gaps(conn, gateway_id)
        out.append(GatewayGaps(gateway_id=gateway_id, gaps=gaps, missing=sum(b - a + 1 for a, b in gaps)))
    return out
