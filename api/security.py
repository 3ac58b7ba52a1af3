"""Bearer tokens (hashed in ``api_tokens``), roles, per-client rate limiting, client addresses."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

import psycopg

from takt.contract.topics import check_topic_id


class Role(StrEnum):
    VIEWER = "viewer"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    # Ingestion only: an edge gateway's API key.
    GATEWAY = "gateway"
    # The andon wallboard's reads only (GET /api/v1/andon): a view-only token for a shop-floor screen.
    KIOSK = "kiosk"


# Read access grows with rank; gateways and kiosks have no access to the general read routes.
RANK = {Role.GATEWAY: 0, Role.KIOSK: 0, Role.VIEWER: 1, Role.SUPERVISOR: 2, Role.ADMIN: 3}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# A reader token's sites: None reads every site.
Sites = frozenset[str] | None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a token speaks for: its role, the sites it may read (None: all) and, for a gateway token,
    its gateway and site."""

    role: Role
    gateway_id: str | None = None
    site_id: str | None = None
    sites: Sites = None
    # The stored token's id (the audit's "who"); None for TAKT_ADMIN_TOKEN.
    token_id: int | None = None

    @property
    def actor(self) -> str:
        return "admin-token" if self.token_id is None else f"token:{self.token_id}"


def create_token(
    conn: psycopg.Connection[Any],
    role: Role,
    name: str | None = None,
    *,
    gateway_id: str | None = None,
    site_id: str | None = None,
    sites: Sequence[str] | None = None,
) -> str:
    """A new random token; only its hash is stored.

    A gateway token is bound to one gateway and site: it may store events of
    that gateway only, as the broker's ACL allows it to publish only there.
    A reader token (viewer, supervisor, admin) may be limited to ``sites``:
    it reads those sites' data only (docs/privacy.md); None reads every site.
    """
    if role is Role.GATEWAY:
        if gateway_id is None or site_id is None:
            raise ValueError("a gateway token needs its gateway and site (--gateway GW --site SITE)")
        check_topic_id(gateway_id, "gateway_id")
        check_topic_id(site_id, "site_id")
        if sites:
            raise ValueError("a gateway token names its one site with site_id, not sites")
    elif gateway_id is not None or site_id is not None:
        raise ValueError("only gateway tokens are bound to a gateway and site")
    scoped = sorted(set(sites)) if sites else None
    for site in scoped or ():
        check_topic_id(site, "site")
    token = f"takt_{secrets.token_urlsafe(32)}"
    conn.execute(
        "INSERT INTO api_tokens (token_hash, role, name, gateway_id, site_id, sites) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (hash_token(token), role.value, name, gateway_id, site_id, scoped),
    )
    return token


def token_caller(conn: psycopg.Connection[Any], token: str, admin_token: str | None) -> Caller | None:
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Caller(Role.ADMIN)
    row = conn.execute(
        "SELECT role, gateway_id, site_id, sites, token_id FROM api_tokens "
        "WHERE token_hash = %s AND revoked_at IS NULL",
        (hash_token(token),),
    ).fetchone()
    if row is None:
        return None
    return Caller(Role(row[0]), row[1], row[2], None if row[3] is None else frozenset(row[3]), row[4])


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

    def exhausted(self, key: str, now: float | None = None) -> bool:
        """Whether ``key`` used its budget this minute (without counting a request)."""
        window = int((time.time() if now is None else now) // 60)
        with self._lock:
            return window == self._window and self._counts.get(key, 0) >= self.per_minute


class TokenCache:
    """Token -> caller lookups kept for ``ttl_s``, so most requests never touch the database for auth.

    Unknown tokens are remembered too (as ``None``), so a flood of bad tokens
    costs one query each per ``ttl_s`` at most. A revoked token stops working
    within ``ttl_s`` in every API process.
    """

    def __init__(
        self,
        ttl_s: float,
        admin_token: str | None,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self._admin = admin_token
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Caller | None]] = OrderedDict()

    def cached(self, token: str) -> tuple[bool, Caller | None]:
        """``(True, caller)`` when known without the database (None: invalid), else ``(False, None)``."""
        if self._admin and hmac.compare_digest(token.encode(), self._admin.encode()):
            return True, Caller(Role.ADMIN)
        key = hash_token(token)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= self._clock():
                return False, None
            return True, entry[1]

    def lookup(self, conn: psycopg.Connection[Any], token: str) -> Caller | None:
        """The token's caller (role, and a gateway token's gateway and site) from the database."""
        caller = token_caller(conn, token, self._admin)
        if self.ttl_s > 0:
            with self._lock:
                self._entries[hash_token(token)] = (self._clock() + self.ttl_s, caller)
                self._entries.move_to_end(hash_token(token))
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        return caller


Network = IPv4Network | IPv6Network


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(peer: str, forwarded_for: str | None, proxies: Sequence[Network]) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy, the last untrusted hop of
    ``X-Forwarded-For`` (the one the first trusted proxy saw; the hops before it are the client's word)."""
    if not forwarded_for or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


def served_over_https(
    scheme: str, peer: str, forwarded_proto: str | None, proxies: Sequence[Network]
) -> bool:
    """TLS here, or a trusted proxy says its client used https (``X-Forwarded-Proto``)."""
    if scheme == "https":
        return True
    if forwarded_proto and _trusted(peer, proxies):
        return forwarded_proto.split(",")[-1].strip().lower() == "https"
    return False


@dataclass(frozen=True, slots=True)
class StoredToken:
    token_id: int
    role: Role
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    sites: tuple[str, ...] | None = None


def list_tokens(conn: psycopg.Connection[Any], *, include_revoked: bool = False) -> list[StoredToken]:
    """Stored tokens (never the secrets: only their hashes are stored), oldest first."""
    rows = conn.execute(
        "SELECT token_id, role, name, created_at, revoked_at, coalesce(sites, ARRAY[site_id]) "
        "FROM api_tokens WHERE %s OR revoked_at IS NULL ORDER BY token_id",
        (include_revoked,),
    ).fetchall()
    return [
        StoredToken(r[0], Role(r[1]), r[2], r[3], r[4], None if r[5] in (None, [None]) else tuple(r[5]))
        for r in rows
    ]


def revoke_token(conn: psycopg.Connection[Any], token_id: int) -> bool:
    """Mark a token revoked; False when no such active token exists."""
    row = conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_id = %s AND revoked_at IS NULL RETURNING 1",
        (token_id,),
    ).fetchone()
    return row is not None
