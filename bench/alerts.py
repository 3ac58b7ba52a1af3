"""Alert latency: from a condition becoming true to its notification reaching a webhook receiver.

    .venv/bin/python bench/alerts.py [--stations 20] [--rounds 3] [--minutes 0.1] [--apis 2]

Starts its own PostgreSQL (devstack), ``--apis`` real ``takt api``
processes with the deployed defaults (alert rounds every TAKT_ALERT_INTERVAL_S
= 2 s under the advisory lock, the sender every 0.5 s, the rollup refresher
every 2 s) and a real HTTP receiver. One site-wide ``station_idle`` rule with
``--minutes`` (6 s by default). Each round, every station gets an ``idle``
event at a random moment over a few seconds (so the moments fall on every
phase of the evaluation loop); the condition becomes true at that event's
time + minutes. Measured per incident:

- **opened**: receiver's clock when the signed POST arrives minus the moment
  the condition became true;
- **resolved**: arrival of the resolved notice minus the commit of the
  ``working`` event that ended it.

Also counts POSTs per incident (must be exactly one of each).

Last, the cost of one evaluation round (:func:`api.alerts.evaluate.evaluate`,
run here in a rolled-back transaction), before and after ``--history`` more
state events spread over the past day at the same stations: a round reads the
states in force, so it scans up to a day (plus TAKT_MAX_STATE_GAP_S) of the
site's state events.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/api.py would shadow the `api` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg

from api.alerts.evaluate import evaluate
from devstack import PostgresServer
from devstack.system import free_port
from takt.store.db import upgrade

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-admin"
SITE = "bench-site"


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.time()
                with outer.lock:
                    outer.got.append((arrived, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def of(self, event: str) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            return [g for g in self.got if g[1]["event"] == event]


def ev(kind: str, station: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "worker_id": f"w-{station}",
        "workstation_id": station,
        "event_type": kind,
        "confidence": 0.9,
        "site_id": SITE,
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def show(name: str, values: list[float]) -> None:
    print(
        f"{name:<10} n={len(values):>3}  p50 {pct(values, 0.5):5.2f} s  p95 {pct(values, 0.95):5.2f} s  "
        f"max {max(values):5.2f} s  mean {statistics.fmean(values):5.2f} s"
    )


def add_history(dsn: str, stations: list[str], n: int) -> None:
    """``n`` state events spread over the day before now at ``stations`` (5 s segments)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        per = max(1, n // len(stations))
        conn.execute(
            "INSERT INTO events (event_id, ts, worker_id, station_id, event_type, confidence, "
            "duration_s, site_id) "
            "SELECT gen_random_uuid(), now() - interval '1 minute' - g * (interval '1 day' / %s), "
            "'w-' || s, s, (ARRAY['working', 'idle', 'absent'])[1 + g %% 3], 0.9, 5, %s "
            "FROM generate_series(1, %s) AS g, unnest(%s::text[]) AS s",
            (per, SITE, per, stations),
        )
        conn.execute("ANALYZE events")


def round_cost(dsn: str, n: int = 10) -> float:
    """Median milliseconds of one evaluation round, in a transaction rolled back each time."""
    times = []
    with psycopg.connect(dsn, options="-c TimeZone=UTC -c jit=off") as conn:
        for _ in range(n):
            started = time.perf_counter()
            evaluate(conn, datetime.now(UTC), {}, 600)
            times.append((time.perf_counter() - started) * 1000)
            conn.rollback()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=0.1, help="the rule's idle minutes (0.1 = 6 s)")
    parser.add_argument("--apis", type=int, default=2, help="API processes sharing the database")
    parser.add_argument("--spread", type=float, default=4.0, help="seconds over which idle events start")
    parser.add_argument("--history", type=int, default=500_000, help="state events added for the round cost")
    parser.add_argument(
        "--history-first", action="store_true", help="add the history before measuring latency (a busy site)"
    )
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="takt-alerts-"))
    root.chmod(0o755)
    postgres = PostgresServer(root / "postgres", free_port(), durable=True)
    procs: list[subprocess.Popen[bytes]] = []
    receiver = Receiver()
    try:
        postgres.start()
        dsn = postgres.create_database("bench")
        upgrade(dsn)
        bases = []
        for _ in range(args.apis):
            port = free_port()
            env = {
                **os.environ,
                "TAKT_DATABASE_URL": dsn,
                "TAKT_ADMIN_TOKEN": TOKEN,
                "TAKT_DRIFT_CHECK_INTERVAL_S": "0",
                "TAKT_LOG_LEVEL": "WARNING",
                "TAKT_RATE_LIMIT_PER_MINUTE": "100000",
                "TAKT_ALERT_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",  # the receiver is on loopback
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "takt.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
                    env=env,
                    cwd=ROOT,
                )
            )
            bases.append(f"http://127.0.0.1:{port}")
        clients = [
            httpx.Client(base_url=b, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) for b in bases
        ]
        for c in clients:
            for _ in range(300):
                try:
                    if c.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
        rule = {"kind": "station_idle", "site_id": SITE, "minutes": args.minutes, "webhook_url": receiver.url}
        assert clients[0].post("/api/v1/alerts/rules", json=rule).status_code == 201
        stations = [f"st{i:02d}" for i in range(args.stations)]
        if args.history_first:
            add_history(dsn, stations, args.history)
        now = datetime.now(UTC)
        clients[0].post(
            "/api/v1/events/batch", json=[ev("working", s, now) for s in stations]
        ).raise_for_status()
        time.sleep(3)
        became_true: dict[int, float] = {}
        opened_lat: list[float] = []
        resolved_lat: list[float] = []
        for rnd in range(args.rounds):
            starts = sorted((random.uniform(0, args.spread), s) for s in stations)
            t0 = time.time()
            idle_at: dict[str, float] = {}
            for offset, station in starts:
                time.sleep(max(0.0, t0 + offset - time.time()))
                at = time.time()
                idle_at[station] = at
                random.choice(clients).post(
                    "/api/v1/events", json=ev("idle", station, datetime.fromtimestamp(at, UTC))
                ).raise_for_status()
            deadline = time.time() + args.minutes * 60 + args.spread + 30
            while len(receiver.of("opened")) < (rnd + 1) * len(stations) and time.time() < deadline:
                time.sleep(0.05)
            for arrived, body in receiver.of("opened")[rnd * len(stations) :]:
                inc = body["incident"]
                true_at = datetime.fromisoformat(inc["condition_since"]).timestamp() + args.minutes * 60
                became_true[inc["id"]] = true_at
                opened_lat.append(arrived - true_at)
            committed: dict[str, float] = {}
            for station in stations:
                random.choice(clients).post(
                    "/api/v1/events", json=ev("working", station, datetime.now(UTC))
                ).raise_for_status()
                committed[station] = time.time()
            deadline = time.time() + 30
            while len(receiver.of("resolved")) < (rnd + 1) * len(stations) and time.time() < deadline:
                time.sleep(0.05)
            for arrived, body in receiver.of("resolved")[rnd * len(stations) :]:
                resolved_lat.append(arrived - committed[body["incident"]["subject"]])
            time.sleep(1)
        rounds_ms = {"before": round_cost(dsn), "after": 0.0}
        if not args.history_first:
            add_history(dsn, stations, args.history)
        rounds_ms["after"] = round_cost(dsn)
        per_incident = Counter((b["incident"]["id"], b["event"]) for _, b in receiver.got)
        print(
            f"{args.apis} API process(es), {args.stations} stations x {args.rounds} rounds, rule minutes "
            f"{args.minutes} ({args.minutes * 60:.0f} s), alert interval 2 s, sender 0.5 s"
        )
        show("opened", opened_lat)
        show("resolved", resolved_lat)
        print(
            f"incidents {len(became_true)}; POSTs per incident and event: "
            f"{sorted(Counter(per_incident.values()).items())} (count: how many pairs)"
        )
        print(
            f"evaluation round (p50 of 10): {rounds_ms['before']:.1f} ms "
            f"{'with' if args.history_first else 'without'} the history, {rounds_ms['after']:.1f} ms with "
            f"{args.history:,} state events over the past day"
        )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)
        receiver.server.shutdown()


if __name__ == "__main__":
    main()
