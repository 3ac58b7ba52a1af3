"""Request dependencies: settings, a pooled connection, the caller's role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool

from api.security import RANK, Caller, Role, TokenCache
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


def _caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Caller:
    # The Guard middleware authenticated the request before its body was read.
    known = getattr(request.state, "caller", None)
    if isinstance(known, Caller):
        return known
    token = bearer.credentials if bearer else api_key
    if not token:
        raise HTTPException(401, "missing bearer token or API key", headers={"WWW-Authenticate": "Bearer"})
    tokens: TokenCache = request.app.state.tokens
    pool: ConnectionPool[psycopg.Connection[Any]] = request.app.state.pool
    hit, caller = tokens.cached(token)
    if not hit:
        with pool.connection() as conn:
            caller = tokens.lookup(conn, token)
    if caller is None:
        raise HTTPException(401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return caller


def _role(caller: Annotated[Caller, Depends(_caller)]) -> Role:
    return caller.role


def _ingest(caller: Annotated[Caller, Depends(_caller)]) -> Caller:
    """Gateways (bound to their gateway and site) and admins may store events."""
    if caller.role is Role.GATEWAY:
        if caller.gateway_id is None or caller.site_id is None:
            raise HTTPException(
                403,
                "this gateway token is not bound to a gateway and site; create one with "
                "`takt api token create --role gateway --gateway GW --site SITE`",
            )
        return caller
    if caller.role is not Role.ADMIN:
        raise HTTPException(403, f"needs the {Role.GATEWAY.value} role")
    if caller.sites is not None:
        raise HTTPException(403, "a site-scoped admin token cannot store events; use a gateway token")
    return caller


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


def _wallboard(role: Annotated[Role, Depends(_role)]) -> Role:
    """The andon wallboard's reads: a kiosk token, or any reader."""
    if role is Role.GATEWAY:
        raise HTTPException(403, f"needs the {Role.KIOSK.value} or {Role.VIEWER.value} role")
    return role


Viewer = Annotated[Role, Depends(require(Role.VIEWER))]
Wallboard = Annotated[Role, Depends(_wallboard)]
Supervisor = Annotated[Role, Depends(require(Role.SUPERVISOR))]
Admin = Annotated[Role, Depends(require(Role.ADMIN))]
# The caller of an ingestion route: a bound gateway token (events of its own
# gateway and site only) or an admin (any).
Ingest = Annotated[Caller, Depends(_ingest)]
