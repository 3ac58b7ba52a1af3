"""Benchmark: p50/p95 latency of each metrics endpoint on a large event table, next to raw scans.

    .venv/bin/python bench/api.py --events 10000000   # 100 workers, 50 stations, 90 days

Starts its own PostgreSQL (takt.devstack.PostgresServer) in a temporary folder,
generates events server-side with generate_series, derives durations and builds
the rollups (collector.rollups.rebuild), then times the API in-process
(FastAPI TestClient: routing, auth, SQL, JSON) for a 30-day window whose edges
are not hour-aligned, and the same totals computed by scanning raw events.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name
# would shadow the `api` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
from fastapi.testclient import TestClient

from api.app import create_app
from api.metrics.engine import station_totals, worker_totals
from api.settings import ApiSettings
from collector.db import upgrade
from collector.rollups import rebuild
from takt.devstack import PostgresServer
from takt.devstack.system import free_port

START = datetime(2026, 1, 1, tzinfo=UTC)
TOKEN = "bench-admin"

GENERATE = """
INSERT INTO events (event_id, ts, worker_id, station_id, event_type, confidence, count,
                    model_version, site_id)
SELECT md5(i::text)::uuid,
       %(start)s + ((i / %(workers)s) * %(step)s + (hashint4(i) %% 20)) * interval '1 second',
       'W' || (i %% %(workers)s),
       'S' || ((i %% %(workers)s) %% %(stations)s),
       CASE WHEN abs(hashint4(i)) %% 100 < 50 THEN 'working' WHEN abs(hashint4(i)) %% 100 < 65 THEN 'idle'
            WHEN abs(hashint4(i)) %% 100 < 75 THEN 'absent' ELSE 'product_count' END,
       0.9, CASE WHEN abs(hashint4(i)) %% 100 >= 75 THEN 1 ELSE 0 END, 'bench@1', 'site-1'
FROM generate_series(%(lo)s, %(hi)s) AS i
"""


def timed(fn: Callable[[], object], n: int) -> tuple[float, float]:
    fn()  # warm caches and plans
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, round(0.95 * len(samples)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--stations", type=int, default=50)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="takt-bench-"))
    root.chmod(0o755)
    server = PostgresServer(root / "pg", free_port(), durable=False)
    server.start()
    try:
        dsn = server.create_database("bench")
        upgrade(dsn)
        per_worker = args.events // args.workers
        step = args.days * 86400 // per_worker
        with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=UTC") as conn:
            t0 = time.perf_counter()
            chunk = 1_000_000
            for lo in range(0, args.events, chunk):
                conn.execute(
                    GENERATE,
                    {
                        "start": START,
                        "workers": args.workers,
                        "stations": args.stations,
                        "step": step,
                        "lo": lo,
                        "hi": min(lo + chunk, args.events) - 1,
                    },
                )
            conn.execute("INSERT INTO workers SELECT DISTINCT worker_id, worker_id FROM events")
            conn.execute(
                "INSERT INTO workstations (station_id, name) "
                "SELECT DISTINCT station_id, station_id FROM events"
            )
            conn.execute("VACUUM ANALYZE events")
            t1 = time.perf_counter()
            rebuild(conn, max_gap_s=600)
            conn.execute("VACUUM ANALYZE")
            t2 = time.perf_counter()
            sizes = conn.execute(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM rollup_worker_hour), "
                "(SELECT count(*) FROM rollup_station_hour), (SELECT count(*) FROM rollup_hour)"
            ).fetchone()
        print(
            f"events={sizes[0]:,} rollup_worker_hour={sizes[1]:,} rollup_station_hour={sizes[2]:,} "
            f"rollup_hour={sizes[3]:,}; generate {t1 - t0:.0f}s, durations+rollups {t2 - t1:.0f}s"
        )

        end = START + timedelta(days=args.days)
        hi = end - timedelta(days=5, minutes=17, seconds=23)
        lo = hi - timedelta(days=30)
        q = {"from": lo.isoformat(), "to": hi.isoformat()}
        settings = ApiSettings(
            database_url=dsn,
            admin_token=TOKEN,
            refresh_interval_s=0,
            rate_limit_per_minute=10**9,
            mqtt_url="mqtt://127.0.0.1:1",
        )
        rows = []
        with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            for path in (
                "/api/metrics/factory",
                "/api/metrics/workers",
                "/api/metrics/workers/W7",
                "/api/metrics/workstations",
                "/api/metrics/workstations/S7",
                "/api/metrics/models",
                "/api/metrics/timeseries",
                "/api/metrics/workstations/S7/cycle-time",
            ):

                def call(path: str = path) -> None:
                    # httpx's params replace a URL's query string, so the bucket goes here.
                    extra = {"bucket": "day"} if path.endswith("timeseries") else {}
                    r = client.get(path, params={**q, **extra})
                    assert r.status_code == 200, r.text

                rows.append((path, *timed(call, args.requests)))
        with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=UTC") as conn:
            rows.append(
                ("raw scan: worker totals", *timed(lambda: worker_totals(conn, [(0, lo, hi)], raw=True), 5))
            )
            rows.append(
                ("raw scan: station unions", *timed(lambda: station_totals(conn, [(0, lo, hi)], raw=True), 3))
            )
            a = worker_totals(conn, [(0, lo, hi)])
            b = worker_totals(conn, [(0, lo, hi)], raw=True)
            worst = max(abs(a[k].working_s - b[k].working_s) for k in b)
        print(
            f"\n30-day window {lo.isoformat()} .. {hi.isoformat()}; rollup vs raw max |diff| = {worst:.6f} s"
        )
        print(f"{'endpoint':48} {'p50 ms':>8} {'p95 ms':>8}")
        for name, p50, p95 in rows:
            print(f"{name:48} {p50:8.1f} {p95:8.1f}")
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
