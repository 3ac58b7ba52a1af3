"""Bearer tokens (hashed in ``api_tokens``), roles, per-client rate limiting."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psycopg

from takt.contract.topics import check_topic_id


class Role(StrEnum):
    VIEWER = "viewer"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    # Ingestion only: an edge gateway's API key.
    GATEWAY = "gateway"


# Read access grows with rank; gateways have no read access.
RANK = {Role.GATEWAY: 0, Role.VIEWER: 1, Role.SUPERVISOR: 2, Role.ADMIN: 3}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a token speaks for: its role and, for a gateway token, its gateway and site."""

    role: Role
    gateway_id: str | None = None
    site_id: str | None = None


def create_token(
    conn: psycopg.Connection[Any],
    role: Role,
    name: str | None = None,
    *,
    gateway_id: str | None = None,
    site_id: str | None = None,
) -> str:
    """A new random token; only its hash is stored.

    A gateway token is bound to one gateway and site: it may store events of
    that gateway only, as the broker's ACL allows it to publish only there.
    """
    if role is Role.GATEWAY:
        if gateway_id is None or site_id is None:
            raise ValueError("a gateway token needs its gateway and site (--gateway GW --site SITE)")
        check_topic_id(gateway_id, "gateway_id")
        check_topic_id(site_id, "site_id")
    elif gateway_id is not None or site_id is not None:
        raise ValueError("only gateway tokens are bound to a gateway and site")
    token = f"takt_{secrets.token_urlsafe(32)}"
    conn.execute(
        "INSERT INTO api_tokens (token_hash, role, name, gateway_id, site_id) VALUES (%s, %s, %s, %s, %s)",
        (hash_token(token), role.value, name, gateway_id, site_id),
    )
    return token


def token_caller(conn: psycopg.Connection[Any], token: str, admin_token: str | None) -> Caller | None:
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Caller(Role.ADMIN)
    row = conn.execute(
        "SELECT role, gateway_id, site_id FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL",
        (hash_token(token),),
    ).fetchone()
    return Caller(Role(row[0]), row[1], row[2]) if row else None


def token_role(conn: psycopg.Connection[Any], token: str, admin_token: str | None) -> Role | None:
    caller = token_caller(conn, token, admin_token)
    return caller.role if caller else None


class RateLimiter:
    """Fixed one-minute windows per client key; in-process (one limiter per API process)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._window = 0
        self._counts: dict[str, int] = {}

    def hit(self, key: str, now: float | None = None) -> int:
        """Count a request; returns how many remain this minute (negative: over the limit)."""
        window = int((time.time() if now is None else now) // 60)
        with self._lock:
            if window != self._window:
                self._window = window
                self._counts.clear()
            used = self._counts.get(key, 0) + 1
            self._counts[key] = used
            return self.per_minute - used
