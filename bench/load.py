"""Load benchmark: a crowd of dashboards against a real `takt api` process and PostgreSQL on loopback.

    .venv/bin/python bench/load.py                    # 200 clients x 15 requests, cache on and off
    .venv/bin/python bench/load.py --clients 50 --requests 10 --ttl 1

Starts its own PostgreSQL (devstack.PostgresServer, temporary folder),
migrates it, starts `takt api` as a subprocess (one uvicorn worker, default
pool of 8 connections), fills it through the API (POST /api/seed, then
--workers x --days of state events through /api/events/batch), builds the
rollups, and then, once per --ttl value, restarts the API with
TAKT_RESPONSE_CACHE_TTL_S set to it and runs --clients concurrent dashboard
clients. Each client makes --requests requests, cycling through what the
dashboard's overview polls (factory, workers, workstations, /api/now) for the
same window, with no think time (the harshest closed loop). It reports, per
run, p50/p95/p99/max latency of the answered requests, the status counts
(anything not 200 is an error), throughput, and the slowest /health seen by a
probe polling it meanwhile. Bounded request counts: it stops by itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name
# would shadow the `api` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from devstack import PostgresServer
from devstack.system import free_port
from takt.store import db
from takt.store.rollups import refresh_all

TOKEN = "load-bench-admin"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def api_process(dsn: str, ttl: float) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "TAKT_DATABASE_URL": dsn,
        "TAKT_ADMIN_TOKEN": TOKEN,
        # One client address for the whole crowd: the per-IP budget is not what is measured.
        "TAKT_RATE_LIMIT_PER_MINUTE": str(10**9),
        "TAKT_RESPONSE_CACHE_TTL_S": str(ttl),
        "TAKT_DRIFT_CHECK_INTERVAL_S": "0",
        "TAKT_LOG_LEVEL": "ERROR",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "takt.cli", "api", "--host", "127.0.0.1", "--port", str(port)], env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("takt api did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def fill(base: str, dsn: str, workers: int, days: int) -> int:
    """Seed data plus ``workers`` x ``days`` of a state every 5 minutes; returns events posted."""
    assert httpx.post(f"{base}/api/seed", headers=AUTH, timeout=120).status_code == 200
    start = (datetime.now(UTC) - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    states = ("working", "working", "idle", "absent")
    posted = 0
    batch: list[dict[str, object]] = []
    with httpx.Client(base_url=base, headers=AUTH, timeout=120) as client:
        for step in range(days * 24 * 12):
            t = (start + timedelta(minutes=5 * step)).isoformat()
            for w in range(workers):
                kind = states[(step + w) % len(states)]
                batch.append(
                    {
                        "timestamp": t,
                        "worker_id": f"L{w}",
                        "station_id": f"LS{w % 20}",
                        "event_type": kind,
                        "confidence": 0.9,
                        "site_id": "site-1",
                    }
                )
                if len(batch) == 1000:
                    assert client.post("/api/events/batch", json=batch).status_code == 200
                    posted += len(batch)
                    batch = []
        if batch:
            assert client.post("/api/events/batch", json=batch).status_code == 200
            posted += len(batch)
    with psycopg.connect(dsn, autocommit=True) as conn:
        refresh_all(conn, max_gap_s=600.0)
    return posted


def dashboard_paths(days: int) -> list[str]:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    window = f"from={(end - timedelta(days=days)).strftime(iso)}&to={end.strftime(iso)}"
    return [
        f"/api/metrics/factory?{window}",
        f"/api/metrics/workers?{window}",
        f"/api/metrics/workstations?{window}",
        "/api/now",
    ]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _get(streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], path: str) -> tuple[int, bool]:
    """One keep-alive HTTP/1.1 GET on a client's own connection: (status, server closes it)."""
    reader, writer = streams
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.lower().split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status, b"connection: close" in head.lower()


async def crowd(base: str, paths: list[str], clients: int, requests: int) -> dict[str, object]:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    health: list[float] = []
    done = asyncio.Event()
    host, port = base.removeprefix("http://").split(":")

    async def dashboard(i: int) -> None:
        # Each dashboard its own keep-alive connection, as browsers have (a minimal client:
        # httpx's pool costs more CPU per request than the cached answers themselves).
        streams = await asyncio.open_connection(host, int(port))
        for k in range(requests):
            path = paths[(i + k) % len(paths)]
            t = time.perf_counter()
            try:
                status, closing = await asyncio.wait_for(_get(streams, path), 60)
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
                streams[1].close()
                streams = await asyncio.open_connection(host, int(port))
                continue
            statuses[str(status)] += 1
            latencies.append(time.perf_counter() - t)
            if closing:
                streams[1].close()
                streams = await asyncio.open_connection(host, int(port))
        streams[1].close()

    async def probe() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as p:
            while not done.is_set():
                t = time.perf_counter()
                await p.get("/health")
                health.append(time.perf_counter() - t)
                await asyncio.sleep(0.1)

    prober = asyncio.create_task(probe())
    started = time.perf_counter()
    await asyncio.gather(*(dashboard(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    done.set()
    await prober
    total = sum(statuses.values())
    return {
        "requests": total,
        "statuses": dict(statuses),
        "errors": total - statuses.get("200", 0),
        "p50_ms": 1000 * _pct(latencies, 0.50),
        "p95_ms": 1000 * _pct(latencies, 0.95),
        "p99_ms": 1000 * _pct(latencies, 0.99),
        "max_ms": 1000 * max(latencies, default=float("nan")),
        "throughput_rps": total / elapsed,
        "health_max_ms": 1000 * max(health, default=float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=15, help="Requests per client.")
    parser.add_argument("--workers", type=int, default=50, help="Extra workers with generated states.")
    parser.add_argument("--days", type=int, default=7, help="Days of generated states (and the window).")
    parser.add_argument(
        "--ttl", type=float, action="append", help="TAKT_RESPONSE_CACHE_TTL_S per run (default: 1 and 0)."
    )
    args = parser.parse_args()
    ttls = args.ttl or [1.0, 0.0]
    root = Path(tempfile.mkdtemp(prefix="takt-load-"))
    root.chmod(0o755)
    server = PostgresServer(root / "pg", free_port(), durable=False)
    server.start()
    try:
        dsn = server.create_database("load")
        db.upgrade(dsn)
        with api_process(dsn, ttls[0]) as base:
            t = time.perf_counter()
            n = fill(base, dsn, args.workers, args.days)
            print(f"filled: {n} events + seed in {time.perf_counter() - t:.1f} s", flush=True)
        paths = dashboard_paths(args.days)
        print(f"{args.clients} clients x {args.requests} requests over {len(paths)} dashboard paths")
        for ttl in ttls:
            with api_process(dsn, ttl) as base:
                # One warm-up round so connection setup is not measured.
                asyncio.run(crowd(base, paths, 4, len(paths)))
                result = asyncio.run(crowd(base, paths, args.clients, args.requests))
            print(
                f"cache ttl {ttl:g} s: {result['requests']} requests, errors {result['errors']} "
                f"{result['statuses']}, p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms, "
                f"p99 {result['p99_ms']:.0f} ms, max {result['max_ms']:.0f} ms, "
                f"{result['throughput_rps']:.0f} req/s, slowest /health {result['health_max_ms']:.0f} ms",
                flush=True,
            )
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
