"""Benchmark: the live tail and one refresh round on ingest-shaped data, by phase.

    .venv/bin/python bench/live_tail.py --rolled-up 100000 --pending 10000

Starts its own PostgreSQL (devstack.PostgresServer) and writes, with the
collector's writer in batches of 500, ``--rolled-up`` events of 100 workers
(50 stations) at 5,000 events/s from an hour boundary on, refreshing them
round by round as it goes (one round per second of events, as a live
refresher does; ``--at-once``: one refresh at the end), then writes
``--pending`` more at the same pace and leaves them pending, as a live ingest
does between two refresh rounds. It then times the tail
(``api.metrics.live.load_tail``, twice), ``worker_totals`` over a window that
covers the live hour (the engine applying the tail), and one refresh round
over the whole queue, split into re-deriving durations and rebuilding rollups
(rolled back, so every run sees the same data).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import cProfile
import pstats
import random
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

import takt.store.rollups as rollups
from api.metrics import live
from api.metrics.engine import snapshot, worker_totals
from devstack import PostgresServer
from devstack.system import free_port
from takt.contract import Event
from takt.store import db
from takt.store.events import write_events

START = datetime(2026, 4, 1, tzinfo=UTC)
RATE = 5000


def _event(rng: random.Random, ts: datetime) -> Event:
    kind = rng.choices(("working", "idle", "absent", "product_count"), (50, 15, 10, 25))[0]
    worker = rng.randrange(100)
    return Event(
        event_id=uuid.uuid4(),
        timestamp=ts,
        worker_id=f"W{worker}",
        station_id=f"S{worker % 50}",
        event_type=kind,
        confidence=0.9,
        count=1 if kind == "product_count" else 0,
        model_version="bench@1",
        site_id="site-1",
    )


def _write(conn: psycopg.Connection[Any], rng: random.Random, first: int, n: int) -> None:
    for i in range(first, first + n, 500):
        batch = [
            _event(rng, START + timedelta(seconds=(i + j) / RATE)) for j in range(min(500, first + n - i))
        ]
        write_events(conn, batch)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rolled-up", type=int, default=100_000, help="events refreshed before (same hour)")
    parser.add_argument("--pending", type=int, default=10_000, help="events left pending")
    parser.add_argument(
        "--at-once",
        action="store_true",
        help="refresh the rolled-up events in one go, not one round per second of events",
    )
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of load_tail and worker_totals (by own time)"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="takt-tail-"))
    root.chmod(0o755)
    server = PostgresServer(root / "pg", free_port(), durable=False)
    server.start()
    try:
        dsn = server.create_database("tail")
        db.upgrade(dsn)
        rng = random.Random(1)
        with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=UTC") as conn:
            # As a live ingest does: a refresh round after each second of events (once at the end
            # with --at-once), so the live hour is stored as the refresher leaves it.
            step = args.rolled_up if args.at_once else RATE
            for first in range(0, args.rolled_up, step):
                _write(conn, rng, first, min(step, args.rolled_up - first))
                rollups.refresh_all(conn, max_gap_s=600, batch=10_000)
            _write(conn, rng, args.rolled_up, args.pending)
            row = conn.execute("SELECT count(*) FROM event_invalidations").fetchone()
            print(
                f"{args.rolled_up:,} events rolled up, {args.pending:,} pending "
                f"in {row[0] if row else 0} queue rows"
            )
            windows = [(0, START - timedelta(days=1), START + timedelta(hours=2))]
            for _ in range(2):
                live._cache.clear()
                t0 = time.perf_counter()
                with snapshot(conn):
                    tail = live.load_tail(conn, 600.0)
                t1 = time.perf_counter()
                live._cache.clear()
                worker_totals(conn, windows)
                t2 = time.perf_counter()
                print(
                    f"load_tail {1000 * (t1 - t0):8.0f} ms ({len(tail.worker):,} worker and "
                    f"{len(tail.station):,} station elements); "
                    f"worker_totals with it {1000 * (t2 - t1):8.0f} ms"
                )
            if args.profile:
                live._cache.clear()
                profile = cProfile.Profile()
                profile.enable()
                worker_totals(conn, windows)
                profile.disable()
                stats = pstats.Stats(profile)
                stats.sort_stats("tottime").print_stats(15)
                stats.sort_stats("cumulative").print_callers("fetchall|execute")
            spent = {"derive": 0.0, "rebuild": 0.0}
            derive, rebuild = rollups._derive_worker_range, rollups.rebuild_keys

            def timed_derive(*a: Any, **k: Any) -> Any:
                t = time.perf_counter()
                try:
                    return derive(*a, **k)
                finally:
                    spent["derive"] += time.perf_counter() - t

            def timed_rebuild(*a: Any, **k: Any) -> Any:
                t = time.perf_counter()
                try:
                    return rebuild(*a, **k)
                finally:
                    spent["rebuild"] += time.perf_counter() - t

            rollups._derive_worker_range, rollups.rebuild_keys = timed_derive, timed_rebuild
            with conn.transaction(force_rollback=True):
                t0 = time.perf_counter()
                result = rollups.refresh(conn, max_gap_s=600, batch=10_000)
                took = time.perf_counter() - t0
            print(
                f"one refresh round {1000 * took:8.0f} ms: derive {1000 * spent['derive']:.0f} ms, rebuild "
                f"{1000 * spent['rebuild']:.0f} ms ({result.invalidations} rows, "
                f"{result.durations_changed:,} durations changed, {result.hours_rebuilt} key-hours)"
            )
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
