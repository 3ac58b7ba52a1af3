"""Benchmark: p50/p95 latency of each metrics endpoint on a large event table, next to raw scans.

    .venv/bin/python bench/api.py --events 10000000   # 100 workers, 50 stations, 90 days
    .venv/bin/python bench/api.py --events 10000000 --data-dir /var/tmp/takt-bench-10m   # kept
    .venv/bin/python bench/api.py --data-dir DIR --ingest 5000   # with a live ingest running

Starts its own PostgreSQL (devstack.PostgresServer), generates events
server-side with generate_series, derives durations and builds the rollups
(takt.store.rollups.rebuild), then times the API in-process (FastAPI
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

``--ingest RATE`` times the endpoints while a separate process writes RATE
events a second (the collector's writer, ten batches a second, timestamps
running on from the data set's end as live data would) and another runs the
rollup refresher as the collector does (every 2 s, at most
TAKT_REFRESH_MAX_SHARE of the time). The window then ends after the live
data, so every answer includes the pending tail (read-your-writes); the
report adds the ingest rate reached and the pending invalidations seen. The
live events are deleted afterwards (and their rollups rebuilt), so a kept
data set stays as generated.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name
# would shadow the `api` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import multiprocessing as mp
import random
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from api.app import create_app
from api.metrics.engine import worker_totals
from api.settings import ApiSettings, SiteCalendar
from devstack import PostgresServer
from devstack.system import free_port
from takt.contract import Event
from takt.settings import CommonSettings
from takt.store import db
from takt.store.events import INVALIDATE, write_events
from takt.store.rollups import RollupRefresher, rebuild, rebuild_units, refresh, refresh_all
from tests import oracle

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
    # A seed-API client asking without from/to: all stored data (90 days).
    "/api/metrics/factory (no from/to)",
    # A site whose calendar is in Europe/Berlin: day buckets start at 23:00 UTC.
    "/api/metrics/timeseries (site calendar Europe/Berlin)",
    # Issue 17 (targets, OEE, boards, losses): a day shift with a break, every station with a
    # target that changes inside the window, a line of ten stations, 60 loss tags at S7.
    "/api/v1/metrics/workstations (targets, shift calendar)",
    "/api/v1/metrics/factory (targets, shift calendar)",
    "/api/v1/metrics/hour-by-hour?station_id=S7 (targets, shift calendar)",
    "/api/v1/metrics/hour-by-hour?line_id=L1 (targets, shift calendar)",
    "/api/v1/metrics/lines/L1 (targets, shift calendar)",
    "/api/v1/metrics/losses?station_id=S7 (targets, shift calendar)",
    "/api/v1/metrics/losses (targets, shift calendar)",
    "/api/v1/metrics/workstations?format=csv (targets, shift calendar)",
)
DAY_SHIFT = {"name": "day", "start": "06:00", "end": "22:00", "breaks": [{"start": "12:00", "end": "12:30"}]}


def prepare_targets(dsn: str, stations: int, lo: datetime, hi: datetime, *, none: bool = False) -> None:
    """Targets (station-wide and two SKUs, changes inside the window), line L1, reasons and tags at S7:
    replaced.

    ``none``: the line only, no targets, reasons or tags (the same requests without the new work).
    """
    mid = lo + (hi - lo) / 2
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(
            "DELETE FROM loss_tags; DELETE FROM loss_reasons; DELETE FROM line_stations; DELETE FROM lines"
        )
        conn.execute("DELETE FROM station_targets")
        for i in range(0 if none else stations):
            # Station-wide and per SKU (K0, K1; K2 units take the station's), each changing inside the window.
            for sku, at, ict in (
                ("", START, 60.0 + i), ("", mid, 45.0 + i), ("K0", START, 40.0 + i), ("K1", START, 70.0 + i),
                ("K1", mid + timedelta(hours=5), 55.0 + i),
            ):  # fmt: skip
                conn.execute(
                    "INSERT INTO station_targets (station_id, sku, effective_from, ideal_cycle_time_s, "
                    "set_by) VALUES (%s, %s, %s, %s, 'bench')",
                    (f"S{i}", sku, at, ict),
                )
        conn.execute(
            "INSERT INTO lines (line_id, site_id, name, updated_by) VALUES ('L1', 'site-1', 'L1', 'bench')"
        )
        for i in range(min(stations, 10)):
            conn.execute("INSERT INTO line_stations VALUES ('L1', %s, %s)", (i, f"S{i}"))
        ids = [
            conn.execute(
                "INSERT INTO loss_reasons (site_id, code, label, created_by) "
                "VALUES ('site-1', %s, %s, 'bench') RETURNING reason_id",
                (code, code),
            ).fetchone()[0]  # type: ignore[index]
            for code in ("changeover", "material", "breakdown")
        ]
        for n in range(0 if none else 60):
            a = lo + timedelta(hours=12 * n, minutes=7)
            conn.execute(
                "INSERT INTO loss_tags (site_id, station_id, from_ts, to_ts, reason_id, tagged_by) "
                "VALUES ('site-1', 'S7', %s, %s, %s, 'bench')",
                (a, a + timedelta(minutes=40), ids[n % 3]),
            )


# Units: one of three SKUs (K2 has no target of its own: the station's applies), and at the
# stations with an even number a reject count (1 in 50 rejected); the others report none.
_SKU = "'K' || (abs(hashint4({i} + 7)) %% 3)"
_REJECTED = "CASE WHEN ({station}) %% 2 = 0 THEN (abs(hashint4({i} + 11)) %% 50 = 0)::int END"

GENERATE = f"""
INSERT INTO events (event_id, ts, worker_id, station_id, event_type, confidence, count,
                    model_version, site_id, sku, rejected)
SELECT md5(i::text)::uuid,
       %(start)s + ((i / %(workers)s) * %(step)s + (hashint4(i) %% 20)) * interval '1 second',
       'W' || (i %% %(workers)s),
       'S' || ((i %% %(workers)s) %% %(stations)s),
       CASE WHEN abs(hashint4(i)) %% 100 < 50 THEN 'working' WHEN abs(hashint4(i)) %% 100 < 65 THEN 'idle'
            WHEN abs(hashint4(i)) %% 100 < 75 THEN 'absent' ELSE 'product_count' END,
       0.9, CASE WHEN abs(hashint4(i)) %% 100 >= 75 THEN 1 ELSE 0 END, 'bench@1', 'site-1',
       CASE WHEN abs(hashint4(i)) %% 100 >= 75 THEN {_SKU.format(i="i")} END,
       CASE WHEN abs(hashint4(i)) %% 100 >= 75
            THEN {_REJECTED.format(i="i", station="(i %% %(workers)s) %% %(stations)s")} END
FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
"""

# A data set generated before units carried SKUs and rejects gets them (the same rule, keyed by
# the event's hash instead of its number), then its units rollup rebuilt: nothing else changes.
_KEY = "hashtext(event_id::text)"
ADD_SKUS = f"""
UPDATE events SET sku = {_SKU.format(i=_KEY)},
                  rejected = {_REJECTED.format(i=_KEY, station="substr(station_id, 2)::int")}
WHERE event_type = 'product_count' AND sku IS NULL
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
        if conn.execute("SELECT 1 FROM events WHERE sku IS NOT NULL LIMIT 1").fetchone() is None:
            print("adding SKUs and rejects to the units, rebuilding rollup_units_hour ...", flush=True)
            t0 = time.perf_counter()
            conn.execute(ADD_SKUS)
            rebuild_units(conn)
            conn.execute("VACUUM ANALYZE events")
            conn.execute("VACUUM ANALYZE rollup_units_hour")
            print(f"  in {time.perf_counter() - t0:.0f} s", flush=True)


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


def refresh_costs(dsn: str, args: argparse.Namespace) -> None:
    """Time refresh rounds (takt.store.rollups.refresh) on the data set: live data, a burst, late data.

    Events are written with the collector's writer and refreshed inside one
    transaction that is rolled back at the end, so the data set is unchanged.
    """
    rng = random.Random(7)
    end = START + timedelta(days=args.days)
    rate = args.events / (args.days * 86400)  # events per second in the data set

    def event(ts: datetime, worker: int) -> Event:
        kind = rng.choices(("working", "idle", "absent", "product_count"), (50, 15, 10, 25))[0]
        return Event(
            event_id=uuid.uuid4(),
            timestamp=ts,
            worker_id=f"W{worker}",
            station_id=f"S{worker % args.stations}",
            event_type=kind,
            confidence=0.9,
            count=1 if kind == "product_count" else 0,
            model_version="bench@1",
            site_id="site-1",
        )

    def timed_round(events: list[Event]) -> tuple[float, int]:
        write_events(conn, events)
        t0 = time.perf_counter()
        refresh(conn, max_gap_s=600, batch=10_000)
        return (time.perf_counter() - t0) * 1000, len(events)

    def show(name: str, samples: list[tuple[float, int]]) -> None:
        ms = sorted(s[0] for s in samples)
        events = sum(s[1] for s in samples)
        print(
            f"{name:52} rounds {len(ms):3}  p50 {statistics.median(ms):7.1f} ms  max {ms[-1]:7.1f} ms  "
            f"{sum(ms) * 1000 / events:8.0f} us/event"
        )

    print("\nrefresh rounds (takt.store.rollups.refresh), rolled back afterwards:")
    with (
        psycopg.connect(dsn, options="-c TimeZone=UTC") as conn,
        # Writes and rounds become savepoints of this transaction, rolled back at its end.
        conn.transaction(force_rollback=True),
    ):
        # Live: rounds of 2 s of events at the data set's rate, after its end.
        live: list[tuple[float, int]] = []
        per_round = max(1, round(2 * rate))
        for r in range(60):
            lo = end + timedelta(seconds=2 * r)
            batch = [
                event(lo + timedelta(seconds=rng.uniform(0, 2)), rng.randrange(args.workers))
                for _ in range(per_round)
            ]
            live.append(timed_round(batch))
        show(f"live: 2 s of events a round ({per_round} events)", live[5:])
        # Late: one event for each of 20 workers at random times in the last 30 days.
        late = [
            timed_round(
                [event(end - timedelta(seconds=rng.uniform(0, 30 * 86400)), rng.randrange(args.workers))]
            )
            for _ in range(20)
        ]
        show("late: 1 event at a random time of the last 30 days", late)
        # Burst: a minute of 5,000 events from every worker (a gateway replaying its buffer).
        t0 = end + timedelta(minutes=5)
        burst = [event(t0 + timedelta(seconds=rng.uniform(0, 60)), w % args.workers) for w in range(5000)]
        show("burst: 5,000 events within one minute, all workers", [timed_round(burst)])


def _live_event(rng: random.Random, ts: datetime, workers: int, stations: int) -> Event:
    kind = rng.choices(("working", "idle", "absent", "product_count"), (50, 15, 10, 25))[0]
    worker = rng.randrange(workers)
    return Event(
        event_id=uuid.uuid4(),
        timestamp=ts,
        worker_id=f"W{worker}",
        station_id=f"S{worker % stations}",
        event_type=kind,
        confidence=0.9,
        count=1 if kind == "product_count" else 0,
        model_version="bench@1",
        site_id="site-1",
    )


def ingest(
    dsn: str, rate: int, start: datetime, workers: int, stations: int, stop: Any, written: Any
) -> None:
    """A process writing ``rate`` events a second, live timestamps from ``start`` on, until stopped."""
    rng = random.Random(11)
    per_batch = max(1, rate // 10)
    began = time.monotonic()
    n = 0
    with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=UTC") as conn:
        while not stop.is_set():
            now = start + timedelta(seconds=time.monotonic() - began)
            batch = [
                _live_event(rng, now - timedelta(seconds=rng.uniform(0, 0.1)), workers, stations)
                for _ in range(per_batch)
            ]
            with conn.transaction():
                write_events(conn, batch)
            n += per_batch
            written.value = n
            # Keep to the rate; behind it, write the next batch at once.
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def refresher(dsn: str, stop: Any, interval_s: float, share: float) -> None:
    """The refresher loop (takt.store.rollups.RollupRefresher), in its own process."""
    task = RollupRefresher(dsn, max_gap_s=600, interval_s=interval_s, max_share=share)
    task.start()
    stop.wait()
    task.stop()


def remove_live(dsn: str, end: datetime) -> None:
    """Delete the live events written after the data set's end and rebuild what they reached."""
    with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=UTC") as conn:
        with conn.transaction():
            rows = conn.execute(
                "DELETE FROM events WHERE ts >= %s RETURNING worker_id, station_id, ts, "
                "ts + coalesce(effective_duration_s, 0) * interval '1 second'",
                (end,),
            ).fetchall()
            spans: dict[tuple[str, str], tuple[datetime, datetime]] = {}
            for worker, station, ts, until in rows:
                lo, hi = spans.get((worker, station), (ts, until))
                spans[(worker, station)] = (min(lo, ts), max(hi, until))
            keys = sorted(spans)
            conn.execute(
                INVALIDATE,
                {
                    "workers": [w for w, _ in keys],
                    "stations": [s for _, s in keys],
                    "min_ts": [spans[k][0] for k in keys],
                    "max_ts": [spans[k][1] for k in keys],
                },
            )
        refresh_all(conn, max_gap_s=600, batch=10_000)
        conn.execute("VACUUM ANALYZE events")
    if rows:
        print(f"removed {len(rows):,} live events and rebuilt their rollups", flush=True)


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
    parser.add_argument("--no-targets", action="store_true", help="no targets or loss tags (ratios)")
    parser.add_argument(
        "--refresh", action="store_true", help="also time refresh rounds (live, late and burst data)"
    )
    parser.add_argument(
        "--ingest",
        type=int,
        default=0,
        metavar="RATE",
        help="time the endpoints while RATE events/s are written and the refresher runs (see above)",
    )
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of ingest before timing")
    parser.add_argument(
        "--cache-ttl",
        type=float,
        default=0.0,
        help="TAKT_RESPONSE_CACHE_TTL_S of the timed API (default 0: every request computes its answer)",
    )
    parser.add_argument("--refresh-interval", type=float, default=2.0, help="the --ingest refresher's period")
    parser.add_argument(
        "--refresh-share",
        type=float,
        default=CommonSettings().refresh_max_share,
        help="the --ingest refresher's TAKT_REFRESH_MAX_SHARE (1: a process of its own)",
    )
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
        if args.ingest:
            run_with_ingest(dsn, args)
        else:
            run(dsn, args)
        if args.refresh:
            refresh_costs(dsn, args)
    finally:
        if args.data_dir is None:
            server.stop(mode="immediate")
            shutil.rmtree(root, ignore_errors=True)
        else:
            server.stop(mode="fast")


def run_with_ingest(dsn: str, args: argparse.Namespace) -> None:
    end = START + timedelta(days=args.days)
    remove_live(dsn, end)  # left over by an interrupted run
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    written = ctx.Value("q", 0)
    procs = [
        ctx.Process(target=ingest, args=(dsn, args.ingest, end, args.workers, args.stations, stop, written)),
        ctx.Process(target=refresher, args=(dsn, stop, args.refresh_interval, args.refresh_share)),
    ]
    pending: list[int] = []
    sampling = True

    def sample() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while sampling:
                row = conn.execute("SELECT count(*) FROM event_invalidations").fetchone()
                pending.append(int(row[0]) if row else 0)
                time.sleep(0.5)

    for p in procs:
        p.start()
    sampler = None
    try:
        time.sleep(args.warmup)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0, n0 = time.monotonic(), written.value
        # The window runs past the live data: every answer includes the pending tail.
        run(
            dsn,
            args,
            lo=end - timedelta(days=30, minutes=17, seconds=23),
            hi=end + timedelta(hours=2, seconds=7),
        )
        took, n1 = time.monotonic() - t0, written.value
    finally:
        sampling = False
        stop.set()
        for p in procs:
            p.join(timeout=60)
    pending.sort()
    rate = (n1 - n0) / took
    queue = f"p50 {statistics.median(pending or [0]):,.0f}, max {max(pending or [0]):,}"
    print(
        f"\nlive ingest during the timing: {rate:,.0f} events/s ({n1 - n0:,} events in {took:.0f} s, "
        f"target {args.ingest:,}/s); pending invalidations {queue}"
    )
    remove_live(dsn, end)


def run(dsn: str, args: argparse.Namespace, lo: datetime | None = None, hi: datetime | None = None) -> None:
    end = START + timedelta(days=args.days)
    if lo is None or hi is None:
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
        # Every request computes its answer: shared answers (the response cache) would time the
        # cache, and with writes from another process would not be read-your-writes.
        response_cache_ttl_s=args.cache_ttl,
    )
    if args.any_schema:
        import api.app

        api.app.require_current_schema = lambda url: None  # type: ignore[assignment,attr-defined]
    berlin = settings.model_copy(
        update={
            "site_id": "site-1",
            "calendars": {"site-1": SiteCalendar(timezone="Europe/Berlin", shifts=[])},
        }
    )
    shifts = settings.model_copy(
        update={
            "site_id": "site-1",
            "calendars": {"site-1": SiteCalendar.model_validate({"timezone": "UTC", "shifts": [DAY_SHIFT]})},
        }
    )
    prepare_targets(dsn, args.stations, lo, hi, none=args.no_targets)
    rows = []
    paths = [p for p in ENDPOINTS if not args.only or any(t in p for t in args.only)]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with (
        TestClient(create_app(settings), headers=headers) as client,
        TestClient(create_app(berlin), headers=headers) as berlin_client,
        TestClient(create_app(shifts), headers=headers) as shift_client,
    ):
        for path in paths:

            def call(path: str = path) -> None:
                url, _, note = path.partition(" ")
                url, _, query = url.partition("?")
                # httpx's params replace a URL's query string, so the bucket goes here.
                extra = {"bucket": "day"} if url.endswith("timeseries") else {}
                extra |= dict(part.split("=") for part in query.split("&") if part)
                on = (
                    shift_client
                    if "shift calendar" in note
                    else berlin_client
                    if "Berlin" in note
                    else client
                )
                r = on.get(url, params={} if "from/to" in note else {**q, **extra})
                assert r.status_code == 200, r.text

            rows.append((path, *timed(call, args.requests)))
            if args.ingest:
                print(f"  {path:56} p50 {rows[-1][1]:8.1f}  p95 {rows[-1][2]:8.1f} ms", flush=True)
    worst = None
    with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=UTC") as conn:
        if not args.no_raw and not args.ingest:
            rows.append(
                ("raw scan: worker totals", *timed(lambda: oracle.worker_totals(conn, [(0, lo, hi)]), 5))
            )
            rows.append(
                ("raw scan: station unions", *timed(lambda: oracle.station_totals(conn, [(0, lo, hi)]), 3))
            )
            a = worker_totals(conn, [(0, lo, hi)])
            b = oracle.worker_totals(conn, [(0, lo, hi)])
            worst = max(abs(a[k].working_s - b[k].working_s) for k in b)
    diff = "" if worst is None else f"; rollup vs raw max |diff| = {worst:.6f} s"
    print(f"\n30-day window {lo.isoformat()} .. {hi.isoformat()}{diff}")
    print(f"{'endpoint':56} {'p50 ms':>8} {'p95 ms':>8}")
    for name, p50, p95 in rows:
        print(f"{name:56} {p50:8.1f} {p95:8.1f}")


if __name__ == "__main__":
    main()
