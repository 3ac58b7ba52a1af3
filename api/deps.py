"""Request dependencies: settings, a pooled connection, the caller's role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool

from api.security import RANK, Role, TokenCache
from api.settings import ApiSettings


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


def get_conn(request: Request) -> Iterator[psycopg.Connection[Any]]:
    pool: ConnectionPool[psycopg.Connection[Any]] = request.app.state.pool
    with pool.connection() as conn:
        yield conn


Settings = Annotated[ApiSettings, Depends(get_settings)]
Conn = Annotated[psycopg.Connection[Any], Depends(get_conn)]

_bearer = HTTPBearer(auto_error=False)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


def _role(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Role:
    # The Guard middleware authenticated the request before its body was read.
    known = getattr(request.state, "role", None)
    if isinstance(known, Role):
        return known
    token = bearer.credentials if bearer else api_key
    if not token:
        raise HTTPException(401, "missing bearer token or API key", headers={"WWW-Authenticate": "Bearer"})
    tokens: TokenCache = request.app.state.tokens
    pool: ConnectionPool[psycopg.Connection[Any]] = request.app.state.pool
    hit, role = tokens.cached(token)
    if not hit:
        with pool.connection() as conn:
            role = tokens.lookup(conn, token)
    if role is None:
        raise HTTPException(401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return role


def require(minimum: Role) -> Callable[..., Role]:
    """A dependency admitting roles of at least ``minimum`` rank (gateway: gateways and admins)."""

    def check(role: Annotated[Role, Depends(_role)]) -> Role:
        if minimum is Role.GATEWAY:
            allowed = role in (Role.GATEWAY, Role.ADMIN)
        else:
            allowed = role is not Role.GATEWAY and RANK[role] >= RANK[minimum]
        if not allowed:
            raise HTTPException(403, f"needs the {minimum.value} role")
        return role

    return check


Viewer = Annotated[Role, Depends(require(Role.VIEWER))]
Supervisor = Annotated[Role, Depends(require(Role.SUPERVISOR))]
Admin = Annotated[Role, Depends(require(Role.ADMIN))]
Ingest = Annotated[Role, Depends(require(Role.GATEWAY))]
