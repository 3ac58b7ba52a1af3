"""The API under load and attack, through a real uvicorn and a real PostgreSQL (issue 14).

Saturation degrades to fast 503s with Retry-After (never a hang, /health always answers),
/health/ready answers 503 quickly when the database is down, chunked bodies cannot pass the
body limit and need a token before they are read, the rate limits cannot be dodged with
X-Forwarded-For and never touch the health probes, every response (500s too) carries the
request id and the security headers, revoked tokens stop working within the cache bound.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app, server_config
from api.settings import ApiSettings
from devstack import MosquittoServer, PostgresServer
from devstack.system import free_port
from takt.store.db import upgrade
from tests.api.conftest import ADMIN

AUTH = {"Authorization": f"Bearer {ADMIN}"}


@contextmanager
def serving(settings: ApiSettings, prepare: Callable[[FastAPI], None] | None = None) -> Iterator[str]:
    """A real uvicorn (configured as `takt api` configures it) in a thread; yields its base URL."""
    app = create_app(settings)
    if prepare is not None:
        prepare(app)
    port = free_port()
    server = uvicorn.Server(server_config(app, settings, "127.0.0.1", port))
    server.config.log_level = "warning"
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def _seeded(base: str) -> None:
    assert httpx.post(f"{base}/api/seed", headers=AUTH, timeout=60).status_code == 200


async def _crowd(base: str, paths: list[str], concurrency: int) -> tuple[list[httpx.Response], list[float]]:
    """Every path once, ``concurrency`` at a time, while /health is polled; raises on any hang."""
    health_latencies: list[float] = []
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency + 5, max_keepalive_connections=concurrency + 5)
    async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=20, limits=limits) as client:

        async def poll_health() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=5) as probe:
                while not done.is_set():
                    t = time.perf_counter()
                    r = await probe.get("/health")
                    health_latencies.append(time.perf_counter() - t)
                    assert r.status_code == 200
                    await asyncio.sleep(0.05)

        queue = list(reversed(paths))
        results: list[httpx.Response] = []

        async def worker() -> None:
            while queue:
                results.append(await client.get(queue.pop()))

        poller = asyncio.create_task(poll_health())
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        done.set()
        await poller
    return results, health_latencies


def test_sixty_concurrent_readers_get_answers_or_fast_503s_and_health_stays_fast(
    settings: ApiSettings,
) -> None:
    # Default pool and queue sizes, no response cache: every request needs the database.
    config = settings.model_copy(update={"response_cache_ttl_s": 0, "request_queue_size": 16})
    with serving(config) as base:
        _seeded(base)
        # Distinct windows, so nothing could be shared even with a cache.
        paths = [
            f"/api/v1/metrics/timeseries?from=2025-01-01T00:00:00Z&to=2027-01-{1 + i % 28:02d}T00:00:00Z"
            "&bucket=day"
            if i % 2
            else f"/api/v1/metrics/workers?from=2020-01-{1 + i % 28:02d}T00:00:00Z"
            for i in range(400)
        ]
        started = time.perf_counter()
        results, health = asyncio.run(_crowd(base, paths, concurrency=60))
        elapsed = time.perf_counter() - started
    statuses = {r.status_code for r in results}
    assert statuses <= {200, 503}, statuses
    assert all(r.headers.get("Retry-After") for r in results if r.status_code == 503)
    assert sum(r.status_code == 200 for r in results) >= 100
    assert health and max(health) < 1.0, max(health)
    assert elapsed < 90


def test_the_crowd_shares_one_computation_of_a_cached_summary(settings: ApiSettings) -> None:
    # One database slot and no queue: without single flight, concurrent misses would get 503.
    config = settings.model_copy(
        update={"db_pool_size": 1, "request_queue_size": 0, "response_cache_ttl_s": 30}
    )
    with serving(config) as base:
        _seeded(base)
        paths = ["/api/v1/metrics/factory?site_id=site-1"] * 300
        results, _ = asyncio.run(_crowd(base, paths, concurrency=100))
        assert {r.status_code for r in results} == {200}
        assert len({r.content for r in results}) == 1
        assert len({r.headers["X-Request-ID"] for r in results}) == 300
        # Different queries at once, no slot free: the rest get 503 with Retry-After at once.
        varied = [f"/api/v1/metrics/workers?from=2020-01-01T00:00:{i % 60:02d}Z" for i in range(200)]
        results, _ = asyncio.run(_crowd(base, varied, concurrency=50))
        assert {r.status_code for r in results} <= {200, 503}
        busy = [r for r in results if r.status_code == 503]
        assert busy and all(r.headers["Retry-After"] == "1" and r.json()["status"] == 503 for r in busy)


def test_cached_answers_expire_and_writes_through_the_api_empty_the_cache(settings: ApiSettings) -> None:
    config = settings.model_copy(update={"response_cache_ttl_s": 1.0})
    with serving(config) as base, httpx.Client(base_url=base, headers=AUTH, timeout=10) as c:
        window = {"from": "2026-01-15T00:00:00Z", "to": "2026-01-16T00:00:00Z"}
        event = {
            "timestamp": "2026-01-15T10:15:00Z",
            "worker_id": "W1",
            "station_id": "S3",
            "event_type": "product_count",
            "confidence": 0.9,
            "count": 3,
        }

        def worker_ids() -> list[str]:
            return [w["worker_id"] for w in c.get("/api/metrics/workers", params=window).json()]

        assert worker_ids() == []
        # A write through this process is seen by the next read at once (it empties the cache).
        assert c.post("/api/events", json=event).status_code == 201
        assert worker_ids() == ["W1"]
        # A write elsewhere (here: straight into the database) shows within the TTL.
        path = "/api/metrics/factory"
        before = c.get(path, params=window).json()["worker_count"]
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO workers (worker_id, name, registered) VALUES ('W77', 'New', true)")
        assert c.get(path, params=window).json()["worker_count"] == before  # the shared answer
        time.sleep(1.2)
        assert c.get(path, params=window).json()["worker_count"] == before + 1


def test_a_read_sent_the_moment_a_write_answers_never_meets_an_older_cached_answer(
    settings: ApiSettings,
) -> None:
    """A client may read its write's answer and ask again before the server has finished with the
    write: the read it sends then must not be served the answer cached before the write."""
    config = settings.model_copy(update={"response_cache_ttl_s": 60.0})
    app = create_app(config)
    window = b"from=2026-01-15T00:00:00Z&to=2026-01-16T00:00:00Z"
    body = (
        b'{"timestamp": "2026-01-15T10:15:00Z", "worker_id": "W1", "station_id": "S3", '
        b'"event_type": "product_count", "confidence": 0.9, "count": 3}'
    )

    def scope(method: str, path: str, query: bytes, length: int = 0) -> dict[str, Any]:
        headers = [(b"authorization", f"Bearer {ADMIN}".encode()), (b"content-type", b"application/json")]
        headers.append((b"content-length", str(length).encode()))
        return {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }  # fmt: skip

    async def call(the_scope: dict[str, Any], data: bytes, on_start: Callable[[], Any] | None = None) -> Any:
        chunks: list[bytes] = []
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and on_start is not None:
                await on_start()  # the client's next request, before this one has finished
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await app(the_scope, receive, send)
        return b"".join(chunks)

    async def scenario() -> tuple[Any, Any]:
        factory = scope("GET", "/api/metrics/factory", window)
        before = await call(factory, b"")  # cached for a minute from here
        read: list[bytes] = []

        async def read_again() -> None:
            read.append(await call(factory, b""))

        await call(scope("POST", "/api/events", b"", len(body)), body, read_again)
        return before, read[0]

    with TestClient(app, headers=AUTH) as c:
        before, after = c.portal.call(scenario)
    assert json.loads(before)["total_production_count"] == 0
    assert json.loads(after)["total_production_count"] == 3


def test_ready_answers_503_within_two_seconds_when_the_database_stops(
    services_root: Path, mosquitto_server: MosquittoServer
) -> None:
    server = PostgresServer(services_root / "postgres-ready", free_port(), durable=False)
    server.start()
    try:
        dsn = server.create_database("ready")
        upgrade(dsn)
        settings = ApiSettings(
            database_url=dsn,
            admin_token=ADMIN,
            refresh_interval_s=0,
            drift_check_interval_s=0,
            mqtt_url=f"mqtt://127.0.0.1:{mosquitto_server.port}",
        )
        with serving(settings) as base:
            r = httpx.get(f"{base}/health/ready", timeout=5)
            assert r.status_code == 200 and r.json()["database"] is True
            server.stop(mode="immediate")
            for _ in range(3):
                started = time.perf_counter()
                r = httpx.get(f"{base}/health/ready", timeout=10)
                assert time.perf_counter() - started < 2.0
                assert r.status_code == 503 and r.json() == {
                    "status": "not ready",
                    "database": False,
                    "broker": True,
                }
            assert httpx.get(f"{base}/health", timeout=2).status_code == 200
            # Database routes fail fast with 503 too, not after a long pool timeout.
            started = time.perf_counter()
            r = httpx.get(f"{base}/api/workers", headers=AUTH, timeout=30)
            assert r.status_code == 503 and r.headers["Retry-After"]
            assert time.perf_counter() - started < settings.db_pool_timeout_s + 2
    finally:
        if server.running():
            server.stop(mode="immediate")


def _raw_request(port: int, head: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head.encode())
    return sock


def _read_status(sock: socket.socket, timeout: float) -> tuple[int, bytes]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]), data


def _chunked_head(path: str, token: str | None) -> str:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\n{auth}\r\n"
    )


def test_a_chunked_body_over_the_limit_gets_413_while_streaming(settings: ApiSettings) -> None:
    config = settings.model_copy(update={"max_body_bytes": 1_048_576})
    with serving(config) as base:
        sock = _raw_request(_port(base), _chunked_head("/api/events/batch", ADMIN))
        piece = b"[" + b" " * 65_535
        sent = 0
        answered = False
        while sent < 50 * 1_048_576 and not answered:
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            except OSError:
                break
            sent += len(piece)
            answered = bool(select.select([sock], [], [], 0)[0])
        status, data = _read_status(sock, 10)
        sock.close()
        assert status == 413, data
        assert b"x-request-id" in data.lower()
        # Refused after about the limit, not after the 50 MB the client meant to send.
        assert sent < 8 * 1_048_576
        # Within the limit, chunked bodies are still accepted.
        events = (
            b'[{"timestamp": "2026-01-15T10:15:00Z", "worker_id": "W1", "station_id": "S1", '
            b'"event_type": "working", "confidence": 0.9}]'
        )
        sock = _raw_request(_port(base), _chunked_head("/api/events/batch", ADMIN))
        sock.sendall(f"{len(events):x}\r\n".encode() + events + b"\r\n0\r\n\r\n")
        status, data = _read_status(sock, 10)
        sock.close()
        assert status == 200, data


def test_authentication_comes_before_the_body_is_read(settings: ApiSettings) -> None:
    with serving(settings) as base:
        for token in (None, "not-a-token"):
            # The body never ends: a server that reads it before checking the token never answers.
            sock = _raw_request(_port(base), _chunked_head("/api/events/batch", token))
            sock.sendall(b'10\r\n[{"event_type": \r\n')
            status, data = _read_status(sock, 5)
            sock.close()
            assert status == 401, data


def test_every_response_carries_the_security_headers_and_a_500_keeps_the_connection(
    settings: ApiSettings,
) -> None:
    def add_failing_route(app: FastAPI) -> None:
        def fail() -> None:
            raise RuntimeError("boom")

        app.add_api_route("/boom", fail)

    with serving(settings, add_failing_route) as base:
        conn = http.client.HTTPConnection("127.0.0.1", _port(base), timeout=10)
        conn.request("GET", "/boom", headers={"X-Request-ID": "probe-500"})
        r = conn.getresponse()
        body = r.read()
        sock = conn.sock
        assert r.status == 500 and b'"request_id":"probe-500"' in body
        assert r.getheader("X-Request-ID") == "probe-500"
        assert r.getheader("X-Frame-Options") == "DENY"
        assert r.getheader("X-Content-Type-Options") == "nosniff"
        assert r.getheader("Content-Security-Policy") == "default-src 'self'"
        assert r.getheader("Referrer-Policy") == "no-referrer"
        assert r.getheader("X-XSS-Protection") is None
        assert r.getheader("Strict-Transport-Security") is None  # plain HTTP, no trusted proxy
        assert not r.will_close
        conn.request("GET", "/health")
        r = conn.getresponse()
        r.read()
        assert r.status == 200 and conn.sock is sock  # the same connection answered
        conn.close()
        # A header smuggled into the request id is not taken over.
        r2 = httpx.get(f"{base}/health", headers={"X-Request-ID": "x" * 500})
        assert r2.headers["X-Request-ID"].startswith("req-")
        # An untrusted peer cannot claim https.
        r2 = httpx.get(f"{base}/health", headers={"X-Forwarded-Proto": "https"})
        assert "Strict-Transport-Security" not in r2.headers
    trusted = settings.model_copy(update={"trusted_proxies": [ip_network("127.0.0.1")]})
    with serving(trusted) as base:
        r2 = httpx.get(f"{base}/health", headers={"X-Forwarded-Proto": "https"})
        assert r2.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert "Strict-Transport-Security" not in httpx.get(f"{base}/health").headers


def test_rate_limits_ignore_forwarded_headers_from_strangers_and_spare_health(settings: ApiSettings) -> None:
    config = settings.model_copy(update={"rate_limit_per_minute": 3, "auth_failures_per_minute": 2})
    with serving(config) as base, httpx.Client(base_url=base, timeout=10) as c:
        # Failed authentication has its own budget: it does not eat the client's main budget.
        for _ in range(2):
            assert c.get("/api/workers", headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = c.get("/api/workers", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 429 and r.headers["Retry-After"]
        assert c.get("/api/workers").status_code == 429  # no token at all: also a failure
        # A token already known valid still gets through; X-Forwarded-For from a stranger is ignored.
        codes = [
            c.get("/api/workers", headers={**AUTH, "X-Forwarded-For": f"10.0.0.{i}"}).status_code
            for i in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        # Health probes are never limited.
        assert all(c.get("/health").status_code == 200 for _ in range(10))
        assert c.get("/health").headers.get("X-RateLimit-Remaining") is None
    trusted = config.model_copy(update={"trusted_proxies": [ip_network("127.0.0.1")]})
    with serving(trusted) as base, httpx.Client(base_url=base, timeout=10) as c:
        # Behind a trusted proxy each forwarded client has its own budget.
        codes = [
            c.get("/api/workers", headers={**AUTH, "X-Forwarded-For": f"10.0.0.{i % 2}"}).status_code
            for i in range(8)
        ]
        assert codes == [200] * 6 + [429] * 2
        # The hops the client wrote itself do not count: the address the proxy saw does.
        spoofed = {**AUTH, "X-Forwarded-For": "1.2.3.4, 10.0.0.0"}
        assert c.get("/api/workers", headers=spoofed).status_code == 429


def _takt(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "takt.cli", "api", "token", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_token_list_and_revoke_through_the_cli(settings: ApiSettings) -> None:
    env = {"TAKT_DATABASE_URL": settings.database_url}
    created = _takt(env, "create", "--role", "viewer", "--name", "wall screen")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    other = _takt(env, "create", "--role", "supervisor", "--name", "shift lead")
    assert other.returncode == 0
    listed = _takt(env, "list")
    assert listed.returncode == 0
    assert secret not in listed.stdout
    lines = [line.split() for line in listed.stdout.splitlines()[1:]]
    # ID ROLE CREATED REVOKED SITES NAME ("*": every site)
    rows = {" ".join(line[5:]): line for line in lines}
    assert set(rows) == {"wall screen", "shift lead"}
    assert rows["wall screen"][1] == "viewer" and rows["wall screen"][3] == "-"
    assert rows["wall screen"][4] == "*"
    config = settings.model_copy(update={"token_cache_ttl_s": 1.0, "response_cache_ttl_s": 0})
    with serving(config) as base, httpx.Client(base_url=base, timeout=10) as c:
        viewer = {"Authorization": f"Bearer {secret}"}
        assert c.get("/api/workstations", headers=viewer).status_code == 200
        revoked = _takt(env, "revoke", rows["wall screen"][0])
        assert revoked.returncode == 0 and "revoked" in revoked.stdout
        revoked_at = time.monotonic()
        # Refused within the stated bound (TAKT_TOKEN_CACHE_TTL_S), and for good.
        while c.get("/api/workstations", headers=viewer).status_code == 200:
            assert time.monotonic() - revoked_at < 1.5
            time.sleep(0.05)
        assert c.get("/api/workstations", headers=viewer).status_code == 401
    after = _takt(env, "list")
    assert "wall screen" not in after.stdout and "shift lead" in after.stdout
    everything = _takt(env, "list", "--all")
    line = next(row for row in everything.stdout.splitlines() if "wall screen" in row)
    assert line.split()[3] != "-"
    again = _takt(env, "revoke", rows["wall screen"][0])
    assert again.returncode != 0 and "no active token" in again.stderr


def test_settings_list_shows_the_new_limits(settings: ApiSettings) -> None:
    shown: dict[str, Any] = settings.masked()
    for name in (
        "trusted_proxies",
        "auth_failures_per_minute",
        "request_queue_size",
        "request_queue_timeout_s",
        "response_cache_ttl_s",
        "token_cache_ttl_s",
        "db_pool_timeout_s",
    ):
        assert name in shown


@pytest.mark.parametrize("value", ["10.0.0.0/8, 127.0.0.1", '["10.0.0.0/8", "127.0.0.1"]'])
def test_trusted_proxies_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TAKT_TRUSTED_PROXIES", value)
    assert [str(n) for n in ApiSettings().trusted_proxies] == ["10.0.0.0/8", "127.0.0.1/32"]
