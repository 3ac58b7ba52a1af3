"""Admins: reader tokens (site-scoped or not) and the privacy audit (docs/privacy.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.access import AllSites, Reader
from api.deps import Admin, Conn
from api.security import Role, create_token, list_tokens
from takt.contract import UtcTime
from takt.contract.topics import TopicError
from takt.store.privacy import read_audit, to_csv

router = APIRouter(tags=["privacy"])


class TokenRequest(BaseModel):
    role: Literal["viewer", "supervisor", "admin"]
    name: str | None = Field(default=None, max_length=200, description="Who or what the token is for")
    sites: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The sites it may read; absent: every site (a site-scoped admin must name its own)",
    )


class TokenCreated(BaseModel):
    token: str = Field(description="The secret, shown this once (only its hash is stored)")
    role: str
    sites: list[str] | None


class TokenOut(BaseModel):
    token_id: int
    role: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    sites: list[str] | None = Field(description="The sites it reads (null: all); a gateway token: its site")


@router.post("/tokens", status_code=201)
def create_reader_token(body: TokenRequest, conn: Conn, _: Admin, access: Reader) -> TokenCreated:
    """Create a viewer, supervisor or admin token, optionally limited to sites.

    A site-scoped admin may create tokens for its own sites only (and must name them)."""
    if access.sites is not None and (body.sites is None or not set(body.sites) <= access.sites):
        raise HTTPException(403, "a site-scoped admin may create tokens for its own sites only")
    try:
        token = create_token(conn, Role(body.role), body.name, sites=body.sites)
    except (ValueError, TopicError) as exc:
        raise HTTPException(422, str(exc)) from None
    return TokenCreated(token=token, role=body.role, sites=sorted(set(body.sites)) if body.sites else None)


@router.get("/tokens")
def tokens(
    conn: Conn, _: Admin, __: AllSites, include_revoked: Annotated[bool, Query(alias="all")] = False
) -> list[TokenOut]:
    """Stored tokens (never their secrets), oldest first."""
    return [
        TokenOut(
            token_id=t.token_id,
            role=t.role.value,
            name=t.name,
            created_at=t.created_at,
            revoked_at=t.revoked_at,
            sites=list(t.sites) if t.sites else None,
        )
        for t in list_tokens(conn, include_revoked=include_revoked)
    ]


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="'token:<id>' (see GET /tokens), 'admin-token' or 'cli:<user>'")
    role: str
    action: str = Field(description="'read' (per-person data served) or a privacy action ('erase')")
    resource: str = Field(description="Method, path and query of the read, or the command")
    subject: str | None = Field(description="The worker asked about; null: every visible worker")
    sites: list[str] | None = Field(description="The reader's sites; null: all")
    detail: dict[str, object]


@router.get("/privacy/audit", response_model=list[AuditOut])
def audit(
    conn: Conn,
    _: Admin,
    __: AllSites,
    from_: Annotated[UtcTime | None, Query(alias="from", description="ISO 8601, inclusive")] = None,
    to: Annotated[UtcTime | None, Query(description="ISO 8601, exclusive")] = None,
    worker_id: Annotated[str | None, Query(max_length=64, description="Records about this worker")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """The append-only record of per-person reads and privacy actions, oldest first (JSON or CSV)."""
    records = read_audit(conn, lo=from_, hi=to, subject=worker_id, limit=limit)
    if format == "csv":
        return Response(
            to_csv(records),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="takt-privacy-audit.csv"'},
        )
    body = [AuditOut.model_validate(r, from_attributes=True).model_dump_json() for r in records]
    return Response("[" + ",".join(body) + "]", media_type="application/json")
