"""Benchmark: p50/p95 latency of each metrics endpoint on a large event table, next to raw scans.

    .venv/bin/python bench/api.py --events 10000000   # 100 workers, 50 stations, 90 days
    .venv/bin/python bench/api.py --events 10000000 --data-dir /var/tmp/takt-bench-10m   # kept

Starts its own PostgreSQL (takt.devstack.PostgresServer), generates events
server-side with generate_series, derives durations and builds the rollups
(collector.rollups.rebuild), then times the API in-process (FastAPI
TestClient: routing, auth, SQL, JSON) for a 30-day window whose edges are not
hour-aligned, and the same totals computed by scanning raw events.

Without --data-dir the cluster lives in a temporary folder, removed at the
end. With --data-dir DIR the cluster is kept in DIR and reused: a later run
asking for the same data set (--events, --workers, --stations, --days) skips
generating it; pending migrations are applied, and the rollups are rebuilt
(durations re-derived only with --rederive) when the schema head changed
since they were built, or when --rebuild is given. Any other data set
request regenerates the events in place. The kept cluster runs with fsync
off, like the temporary one: after an operating-system crash delete DIR.
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
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from api.app import create_app
from api.metrics.engine import station_totals, worker_totals
from api.settings import ApiSettings
from collector import db
from collector.rollups import rebuild
from takt.devstack import PostgresServer
from takt.devstack.system import free_port

START = datetime(2026, 1, 1, tzinfo=UTC)
TOKEN = "bench-admin"
ENDPOINTS = (
    "/api/metrics/factory",
    "/api/metrics/workers",
    "/api/metrics/workers/W7",
    "/api/metrics/workstations",
    "/api/metrics/workstations/S7",
    "/api/metrics/models",
    "/api/metrics/timeseries",
    "/api/metrics/workstations/S7/cycle-time",
)

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
FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
"""

# What the kept database holds: the data set's parameters and the schema head
# its rollups were built with.
DATASET = """
CREATE TABLE IF NOT EXISTS bench_dataset (
    id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    events bigint NOT NULL, workers int NOT NULL, stations int NOT NULL, days int NOT NULL,
    rollups_head text, generate_s double precision, derive_s double precision, rollups_s double precision
)"""


def timed(fn: Callable[[], object], n: int) -> tuple[float, float]:
    fn()  # warm caches and plans
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, round(0.95 * len(samples)) - 1)]


def generate(conn: psycopg.Connection[Any], args: argparse.Namespace) -> float:
    """Events, workers and stations of the requested data set; returns seconds taken."""
    t0 = time.perf_counter()
    conn.execute("TRUNCATE events, workers, workstations, event_invalidations")
    per_worker = args.events // args.workers
    step = args.days * 86400 // per_worker
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
        "INSERT INTO workstations (station_id, name) SELECT DISTINCT station_id, station_id FROM events"
    )
    conn.execute("VACUUM ANALYZE events")
    return time.perf_counter() - t0


def prepare(dsn: str, args: argparse.Namespace) -> None:
    """Bring the database to the requested data set with current rollups, reusing what it holds."""
    current = db.current_revision(dsn)
    if current != db.head_revision() and not args.any_schema:
        t0 = time.perf_counter()
        db.upgrade(dsn)
        print(f"migrated {current} -> {db.head_revision()} in {time.perf_counter() - t0:.0f} s", flush=True)
    head = db.current_revision(dsn)
    with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=UTC") as conn:
        conn.execute(DATASET)
        row = conn.execute(
            "SELECT events, workers, stations, days, rollups_head FROM bench_dataset WHERE id = 1"
        ).fetchone()
        wanted = (args.events, args.workers, args.stations, args.days)
        fresh = row is None or tuple(row[:4]) != wanted
        if fresh:
            print(f"generating {args.events:,} events ...", flush=True)
            conn.execute("DELETE FROM bench_dataset")
            conn.execute(
                "INSERT INTO bench_dataset (events, workers, stations, days, generate_s) "
                "VALUES (%s, %s, %s, %s, %s)",
                (*wanted, generate(conn, args)),
            )
        if fresh or args.rebuild or args.rederive or (row is not None and row[4] != head):
            derive = fresh or args.rederive
            print(f"{'deriving durations and ' if derive else ''}building rollups ...", flush=True)
            t0 = time.perf_counter()
            timings = rebuild(conn, max_gap_s=600, derive=derive)
            conn.execute("VACUUM ANALYZE")
            took = time.perf_counter() - t0
            conn.execute(
                "UPDATE bench_dataset SET rollups_head = %s, rollups_s = %s, "
                "derive_s = CASE WHEN %s THEN %s ELSE derive_s END",
                (head, took - timings.get("derive", 0.0), derive, timings.get("derive", 0.0)),
            )
        else:
            print("reusing the data set and rollups in the data directory", flush=True)


def report_sizes(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        built = conn.execute("SELECT generate_s, derive_s, rollups_s FROM bench_dataset").fetchone()
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND (tablename = 'events' OR tablename LIKE 'rollup%%') ORDER BY tablename"
            ).fetchall()
        ]
        print(f"{'table':28} {'rows':>12} {'size MB':>9}")
        for table in tables:
            rows, size = conn.execute(
                f"SELECT (SELECT count(*) FROM {table}), pg_total_relation_size('{table}') / 1e6"
            ).fetchone() or (0, 0)
            print(f"{table:28} {rows:12,} {size:9.1f}")
        indexes = conn.execute(
            "SELECT indexrelname, pg_relation_size(indexrelid) / 1e6 FROM pg_stat_user_indexes "
            "WHERE relname = 'events' ORDER BY 1"
        ).fetchall()
        print("events indexes: " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in indexes))
        if built:
            print(
                "built: generate {:.0f} s, derive durations {:.0f} s, rollups {:.0f} s".format(
                    *(x or 0 for x in built)
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--stations", type=int, default=50)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--requests", type=int, default=40, help="timed requests per endpoint")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep the PostgreSQL cluster here and reuse its data set on later runs (see above)",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the rollups of a kept data set")
    parser.add_argument("--rederive", action="store_true", help="re-derive durations too (implies --rebuild)")
    parser.add_argument(
        "--only", action="append", default=[], metavar="TEXT", help="time only endpoints containing TEXT"
    )
    parser.add_argument("--no-raw", action="store_true", help="skip the (slow) raw scans")
    parser.add_argument(
        "--any-schema",
        action="store_true",
        help="neither migrate nor check the schema: time an older checkout against a kept database "
        "that a newer one upgraded (side-by-side comparisons)",
    )
    args = parser.parse_args()

    if args.data_dir is None:
        root = Path(tempfile.mkdtemp(prefix="takt-bench-"))
        root.chmod(0o755)
    else:
        root = args.data_dir.resolve()
        root.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(root / "pg", free_port(), durable=False)
    server.start()
    try:
        dsn = server.create_database("bench")
        prepare(dsn, args)
        report_sizes(dsn)
        run(dsn, args)
    finally:
        if args.data_dir is None:
            server.stop(mode="immediate")
            shutil.rmtree(root, ignore_errors=True)
        else:
            server.stop(mode="fast")


def run(dsn: str, args: argparse.Namespace) -> None:
    end = START + timedelta(days=args.days)
    hi = end - timedelta(days=5, minutes=17, seconds=23)
    lo = hi - timedelta(days=30)
    q = {"from": lo.isoformat(), "to": hi.isoformat()}
    settings = ApiSettings(
        database_url=dsn,
        admin_token=TOKEN,
        refresh_interval_s=0,
        drift_check_interval_s=0,
        rate_limit_per_minute=10**9,
        mqtt_url="mqtt://127.0.0.1:1",
    )
    if args.any_schema:
        import api.app

        api.app.require_current_schema = lambda url: None  # type: ignore[assignment]
    rows = []
    paths = [p for p in ENDPOINTS if not args.only or any(t in p for t in args.only)]
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for path in paths:

            def call(path: str = path) -> None:
                # httpx's params replace a URL's query string, so the bucket goes here.
                extra = {"bucket": "day"} if path.endswith("timeseries") else {}
                r = client.get(path, params={**q, **extra})
                assert r.status_code == 200, r.text

            rows.append((path, *timed(call, args.requests)))
    worst = None
    with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=UTC") as conn:
        if not args.no_raw:
            rows.append(
                ("raw scan: worker totals", *timed(lambda: worker_totals(conn, [(0, lo, hi)], raw=True), 5))
            )
            rows.append(
                ("raw scan: station unions", *timed(lambda: station_totals(conn, [(0, lo, hi)], raw=True), 3))
            )
            a = worker_totals(conn, [(0, lo, hi)])
            b = worker_totals(conn, [(0, lo, hi)], raw=True)
            worst = max(abs(a[k].working_s - b[k].working_s) for k in b)
    diff = "" if worst is None else f"; rollup vs raw max |diff| = {worst:.6f} s"
    print(f"\n30-day window {lo.isoformat()} .. {hi.isoformat()}{diff}")
    print(f"{'endpoint':48} {'p50 ms':>8} {'p95 ms':>8}")
    for name, p50, p95 in rows:
        print(f"{name:48} {p50:8.1f} {p95:8.1f}")


if __name__ == "__main__":
    main()
