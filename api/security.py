"""Bearer tokens (hashed in ``api_tokens``), roles, per-client rate limiting."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from enum import StrEnum
from typing import Any

import psycopg


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


def create_token(conn: psycopg.Connection[Any], role: Role, name: str | None = None) -> str:
    """A new random token; only its hash is stored."""
    token = f"takt_{secrets.token_urlsafe(32)}"
    conn.execute(
        "INSERT INTO api_tokens (token_hash, role, name) VALUES (%s, %s, %s)",
        (hash_token(token), role.value, name),
    )
    return token


def token_role(conn: psycopg.Connection[Any], token: str, admin_token: str | None) -> Role | None:
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Role.ADMIN
    row = conn.execute(
        "SELECT role FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL", (hash_token(token),)
    ).fetchone()
    return Role(row[0]) if row else None


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
