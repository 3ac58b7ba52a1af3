"""The API's front door: one ASGI middleware (``Guard``) in front of every route.

In order, for each HTTP request:

1. A request id (the caller's ``X-Request-ID`` when it is short and plain, else a new one).
2. ``/health`` and ``/health/ready`` go straight to their routes: no rate limit, no queue, no token.
3. A declared ``Content-Length`` above ``TAKT_MAX_BODY_BYTES``: 413 before anything is read.
4. ``/api/*`` and ``/metrics`` need a token, checked *before the body is read*: a missing or
   invalid one is 401 and counts against the client's separate failed-authentication budget
   (``TAKT_AUTH_FAILURES_PER_MINUTE``); a client over that budget gets 429 without a lookup
   unless its token is already known to be valid.
   Roles come from a short-lived cache (``TAKT_TOKEN_CACHE_TTL_S``).
5. The per-client budget (``TAKT_RATE_LIMIT_PER_MINUTE``) for everything else; the client is the
   TCP peer, or the ``X-Forwarded-For`` hop named by a trusted proxy (``TAKT_TRUSTED_PROXIES``).
6. A body is read up to ``TAKT_MAX_BODY_BYTES`` while it streams (chunked too): beyond it, 413.
7. Requests that use the database pass a ``Gate`` of ``TAKT_DB_POOL_SIZE`` slots, so no more of
   them run at once than there are connections (worker threads never pile up waiting for one);
   up to ``TAKT_REQUEST_QUEUE_SIZE`` wait at most ``TAKT_REQUEST_QUEUE_TIMEOUT_S``, the rest get
   503 with ``Retry-After`` at once.
8. ``GET /api/metrics/*`` and ``/api/now`` answers are shared for ``TAKT_RESPONSE_CACHE_TTL_S``
   between callers of the same role and sites asking the same query, and computed once at a time per query
   (single flight): a crowd of dashboards costs one computation per second per query. While
   one caller recomputes an expired answer, the others get the previous one (expired at most
   ``STALE_S`` ago). A successful write through this process (POST/DELETE under ``/api``)
   empties the cache, and so does the dashboard's change poller (dashboard/live.py) when the
   data changed, before it tells the browsers to refetch.

An answer carrying per-person data is recorded in the privacy audit by its route, on the route's
own connection (``api.access``), and marked ``X-Takt-Per-Person``; each replay of a marked answer
from the response cache is recorded here, under the database gate, before its first byte is sent.
The header itself never leaves. If a record cannot be written, the answer is a 503/500 instead:
no unaudited per-person read.

Every response, 500s included, carries the request id and the security headers, and an
unexpected error is answered (500, the common error format) without closing the connection.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import anyio
import psycopg
from psycopg_pool import PoolTimeout
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.access import audit_fields, resource_of
from api.csv_export import wants_csv
from api.errors import error_response
from api.security import Caller, RateLimiter, TokenCache, client_address, served_over_https
from api.settings import ApiSettings
from takt.store import privacy

logger = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'",
    "Referrer-Policy": "no-referrer",
}
# Only over TLS, or behind a trusted proxy that says its client used https.
HSTS = "max-age=31536000"
# Swagger UI loads its script and styles from a CDN.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com"
)
HEALTH_PATHS = frozenset({"/health", "/health/ready"})
CACHED_PREFIXES = ("/api/metrics/", "/api/v1/metrics/")
CACHED_PATHS = frozenset({"/api/now"})
# Server-sent events: open for hours, with their own database connection.
UNGATED_PATHS = frozenset({"/api/live"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RETRY_AFTER_SATURATED = "1"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def needs_token(path: str) -> bool:
    return path in {"/metrics", "/api"} or path.startswith("/api/")


def cacheable(method: str, path: str) -> bool:
    return method == "GET" and (path in CACHED_PATHS or path.startswith(CACHED_PREFIXES))


class Saturated(Exception):
    """No database slot free and the queue full, or the wait too long."""


class Gate:
    """At most ``slots`` holders at once; up to ``queue_size`` more wait up to ``timeout_s``."""

    def __init__(self, slots: int, queue_size: int, timeout_s: float) -> None:
        self.slots = slots
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.waiting = 0
        self._semaphore: anyio.Semaphore | None = None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._semaphore is None:
            # Created on first use, inside the serving event loop.
            self._semaphore = anyio.Semaphore(self.slots)
        semaphore = self._semaphore
        try:
            semaphore.acquire_nowait()
        except anyio.WouldBlock:
            if self.waiting >= self.queue_size:
                raise Saturated from None
            self.waiting += 1
            try:
                with anyio.fail_after(self.timeout_s):
                    await semaphore.acquire()
            except TimeoutError:
                raise Saturated from None
            finally:
                self.waiting -= 1
        try:
            yield
        finally:
            semaphore.release()


@dataclass(frozen=True, slots=True)
class Captured:
    """A complete response, as the app sent it (without the per-request headers added here)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    async def replay(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": list(self.headers)})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


async def capture(app: ASGIApp, scope: Scope, receive: Receive) -> Captured:
    start: Message = {}
    chunks: list[bytes] = []

    async def keep(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, keep)
    return Captured(int(start["status"]), list(start.get("headers", [])), b"".join(chunks))


@dataclass(slots=True)
class Flight:
    # The cache generation it started in: a request after a write never joins an older one.
    generation: int
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Captured | None = None


CacheKey = tuple[str, bytes, str]
# While one caller recomputes an expired answer, the others get the previous one, if it
# expired less than this long ago, instead of waiting for the recomputation.
STALE_S = 10.0


class ResponseCache:
    """200 answers kept ``ttl_s`` seconds, and the computations in flight (single flight)."""

    def __init__(
        self, ttl_s: float, *, max_entries: int = 2048, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: dict[CacheKey, tuple[float, Captured]] = {}
        self.flights: dict[CacheKey, Flight] = {}
        # Bumped by clear(): an answer computed across a clear is not kept (it may predate the change).
        self.generation = 0

    def fresh(self, key: CacheKey) -> Captured | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def stale(self, key: CacheKey) -> Captured | None:
        """An expired answer at most ``STALE_S`` past its TTL: served while a recomputation runs."""
        entry = self._entries.get(key)
        if entry is None or entry[0] + STALE_S <= self._clock():
            return None
        return entry[1]

    def store(self, key: CacheKey, response: Captured) -> None:
        now = self._clock()
        if len(self._entries) >= self._max:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self._max:
                self._entries.clear()
        self._entries[key] = (now + self.ttl_s, response)

    def clear(self) -> None:
        self._entries.clear()
        self.generation += 1


class _Disconnected(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` bytes (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay_body(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _token(headers: Headers) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key") or None


def _seconds_to_next_minute() -> str:
    return str(60 - int(time.time()) % 60)


class Guard:
    """See the module docstring; ``state`` is the app's state (``pool`` appears at startup)."""

    def __init__(self, app: ASGIApp, settings: ApiSettings, state: Any) -> None:
        self.app = app
        self.settings = settings
        self.state = state
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.failures = RateLimiter(settings.auth_failures_per_minute)
        admin = settings.admin_token.get_secret_value() if settings.admin_token else None
        self.tokens = TokenCache(settings.token_cache_ttl_s, admin)
        self.gate = Gate(settings.db_pool_size, settings.request_queue_size, settings.request_queue_timeout_s)
        self.cache = ResponseCache(settings.response_cache_ttl_s)
        state.limiter = self.limiter
        state.tokens = self.tokens
        state.gate = self.gate
        state.response_cache = self.cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else f"req-{uuid.uuid4().hex[:16]}"
        scope.setdefault("state", {})["request_id"] = request_id
        peer = scope["client"][0] if scope.get("client") else "unknown"
        proxies = self.settings.trusted_proxies
        client = client_address(peer, headers.get("x-forwarded-for"), proxies)
        scheme = scope.get("scheme", "http")
        https = served_over_https(scheme, peer, headers.get("x-forwarded-proto"), proxies)
        path: str = scope["path"]
        added: dict[str, str] = {"X-Request-ID": request_id}
        status = 0
        # A successful write empties the shared answers (the response cache).
        writes = (
            scope["method"] not in ("GET", "HEAD", "OPTIONS") and needs_token(path) and self.cache.ttl_s > 0
        )

        async def send_out(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                marker = privacy.AUDIT_HEADER.encode()
                raw = [(k, v) for k, v in message.get("headers", []) if k.lower() != marker]
                message = {**message, "headers": raw}
                status = int(message["status"])
                extended = _with_headers(message.get("headers", []), added, path, https)
                message = {**message, "headers": extended}
                if writes and 200 <= status < 400:
                    # Before the client can read the answer and ask again: a read sent
                    # right after a write must not meet an answer cached before it.
                    self.cache.clear()
            await send(message)

        try:
            await self._handle(scope, receive, send_out, headers, client, added)
        except _Disconnected:
            return
        except Exception as exc:
            if status:
                # The answer is under way: nothing better than letting the server close the connection.
                raise
            request = Request(scope)
            if isinstance(exc, Saturated | PoolTimeout | psycopg.OperationalError):
                # Busy, or the database unreachable: a client can retry, nothing is wrong with its request.
                logger.warning("503 for %s %s: %s", scope["method"], path, type(exc).__name__)
                message = (
                    "server busy, retry shortly" if isinstance(exc, Saturated) else "database unavailable"
                )
                response = error_response(
                    request, 503, message, headers={"Retry-After": RETRY_AFTER_SATURATED}
                )
            else:
                logger.exception("unhandled error on %s", path)
                response = error_response(request, 500, "internal server error")
            await response(scope, receive, send_out)
            return
        if writes and 200 <= status < 400:
            # Again once the write is over: an answer computed while it ran is not kept.
            self.cache.clear()

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, client: str, added: dict[str, str]
    ) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path in HEALTH_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        limit = self.settings.max_body_bytes
        length = headers.get("content-length")
        too_large = f"request body larger than {limit} bytes"
        if length is not None and (not length.isdigit() or int(length) > limit):
            await error_response(request, 413, too_large)(scope, receive, send)
            return
        caller: Caller | None = None
        if needs_token(path):
            token = _token(headers)
            known = False
            if token is not None:
                known, caller = self.tokens.cached(token)
            if caller is None and self.failures.exhausted(client):
                # Over the failed-authentication budget: only tokens already known to be valid
                # get through (no lookup), so guessing costs the database nothing.
                await error_response(
                    request,
                    429,
                    "too many requests with a missing or invalid token",
                    headers={"Retry-After": _seconds_to_next_minute()},
                )(scope, receive, send)
                return
            if token is not None and not known:
                async with self.gate.slot():
                    caller = await anyio.to_thread.run_sync(self._lookup, token)
            if caller is None:
                self.failures.hit(client)
                message = "missing bearer token or API key" if token is None else "invalid or revoked token"
                await error_response(request, 401, message, headers={"WWW-Authenticate": "Bearer"})(
                    scope, receive, send
                )
                return
            scope["state"]["caller"] = caller
        remaining = self.limiter.hit(client)
        added["X-RateLimit-Remaining"] = str(max(remaining, 0))
        if remaining < 0:
            await error_response(
                request, 429, "rate limit exceeded", headers={"Retry-After": _seconds_to_next_minute()}
            )(scope, receive, send)
            return
        if method in BODY_METHODS and (length not in (None, "0") or "transfer-encoding" in headers):
            body = await read_body(receive, limit)
            if body is None:
                await error_response(request, 413, too_large)(scope, receive, send)
                return
            receive = _replay_body(body, receive)
        if caller is not None and self.cache.ttl_s > 0 and cacheable(method, path):
            query = scope.get("query_string", b"")
            # CSV and JSON answers of one query are two entries (api/csv_export.py).
            if wants_csv(None, Headers(scope=scope).get("accept")):
                query += b"&accept=csv"
            # Role and sites: what a caller may see decides the answer (api.access).
            sites = "*" if caller.sites is None else ",".join(sorted(caller.sites))
            key = (path, query, f"{caller.role.value}@{sites}")
            await self._cached(scope, receive, send, key)
        elif needs_token(path) and path not in UNGATED_PATHS:
            async with self.gate.slot():
                await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _replay(self, answer: Captured, scope: Scope, send: Send) -> None:
        """Send a shared answer; one marked as per-person data is recorded in the audit first."""
        marker = privacy.AUDIT_HEADER.encode()
        subject = next((unquote(v.decode("latin-1")) for k, v in answer.headers if k.lower() == marker), None)
        caller = scope["state"].get("caller")
        if subject is not None and isinstance(caller, Caller):
            async with self.gate.slot():
                await anyio.to_thread.run_sync(self._audit, caller, scope, subject)
        await answer.replay(send)

    async def _cached(self, scope: Scope, receive: Receive, send: Send, key: CacheKey) -> None:
        hit = self.cache.fresh(key)
        if hit is not None:
            await self._replay(hit, scope, send)
            return
        flight = self.cache.flights.get(key)
        if flight is not None and flight.generation == self.cache.generation:
            previous = self.cache.stale(key)
            if previous is not None:
                await self._replay(previous, scope, send)
                return
            await flight.done.wait()
            if flight.result is not None and flight.result.status == 200:
                await self._replay(flight.result, scope, send)
                return
            # The leader's answer was an error: find out our own.
            async with self.gate.slot():
                await self.app(scope, receive, send)
            return
        generation = self.cache.generation
        flight = self.cache.flights[key] = Flight(generation)
        try:
            async with self.gate.slot():
                result = await capture(self.app, scope, receive)
            if result.status == 200 and generation == self.cache.generation:
                self.cache.store(key, result)
            flight.result = result
        finally:
            if self.cache.flights.get(key) is flight:  # a later flight may have taken the key
                del self.cache.flights[key]
            flight.done.set()
        await result.replay(send)

    def _audit(self, caller: Caller, scope: Scope, subject: str) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        resource = resource_of(scope["method"], scope["path"], query)
        with self.state.pool.connection() as conn:
            privacy.record(conn, **audit_fields(caller, resource, subject, scope["state"].get("request_id")))

    def _lookup(self, token: str) -> Caller | None:
        with self.state.pool.connection() as conn:
            return self.tokens.lookup(conn, token)


def _with_headers(
    raw: Iterable[tuple[bytes, bytes]], added: dict[str, str], path: str, https: bool
) -> list[tuple[bytes, bytes]]:
    headers = MutableHeaders(raw=list(raw))
    for name, value in added.items():
        headers[name] = value
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if path.startswith("/docs"):
        headers["Content-Security-Policy"] = DOCS_CSP
    if https:
        headers.setdefault("Strict-Transport-Security", HSTS)
    return headers.raw
