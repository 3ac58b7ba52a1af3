"""Bearer-token roles for the dashboard's own endpoints, the same tokens the API accepts.

A token is the configured admin token (``TAKT_ADMIN_TOKEN``) or one whose
SHA-256 is in ``api_tokens`` and not revoked. Roles are ordered
viewer < supervisor < admin; gateway tokens only ingest and see nothing here.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import psycopg
from fastapi import HTTPException, Request, status

ROLE_RANK = {"viewer": 1, "supervisor": 2, "admin": 3}
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers=_CHALLENGE)
    return token.strip()


def resolve_role(conn: psycopg.Connection[Any], token: str, admin_token: str | None) -> str | None:
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return "admin"
    has_table = conn.execute("SELECT to_regclass('api_tokens') IS NOT NULL").fetchone()
    if not has_table or not has_table[0]:
        return None
    row = conn.execute(
        "SELECT role FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL",
        (hashlib.sha256(token.encode()).hexdigest(),),
    ).fetchone()
    return str(row[0]) if row else None


def role_checker(
    minimum: str,
    connect: Callable[[Request], contextlib.AbstractContextManager[psycopg.Connection[Any]]],
    admin_token: Callable[[Request], str | None],
) -> Callable[[Request], str]:
    """A FastAPI dependency that returns the caller's role, or answers 401/403."""

    def check(request: Request) -> str:
        token = _bearer(request)
        with connect(request) as conn:
            role = resolve_role(conn, token, admin_token(request))
        if role is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid or revoked token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if ROLE_RANK.get(role, 0) < ROLE_RANK[minimum]:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs the {minimum} role, this token is {role}")
        return role

    return check
