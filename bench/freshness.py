"""Freshness: from an event's commit to the moment it shows in the metrics API and on the dashboard.

    .venv/bin/python bench/freshness.py [--load 2000] [--probes 40] [--burst 100000]

Starts its own PostgreSQL and Mosquitto (devstack), one collector and one
API process as deployed (each with its rollup refresher: every 2 s, at most
TAKT_REFRESH_MAX_SHARE of the time), and a background load of ``--load``
events/s published over MQTT by a simulated gateway. Then it sends probes, one
product_count event each for a worker of its own, alternately

- over HTTP (``POST /api/events``: the 201 comes after the commit), and
- over MQTT through the collector (the gateway's CommitAck comes after the commit),

and measures, from that commit:

- **API**: until ``GET /api/metrics/workers/{probe}`` reports the unit (polled
  every 10 ms);
- **dashboard**: until the page would show it: the first ``event: change``
  on the live stream (``GET /api/live``, SSE) naming ``metrics`` after the
  commit, plus the page's refetch (``GET /api/metrics/factory``) it triggers.

Last, a burst of ``--burst`` events is published at once (a gateway replaying
its buffer, issue 14) and the probes are repeated while the refresher works
through the queue: the pending invalidations and how long the queue took to
drain are reported beside the probes' figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/api.py would shadow the `api` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import importlib.util
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import psycopg

from broker.passwords import generate_password
from devstack import MosquittoServer, PostgresServer
from devstack.system import free_port
from takt.contract import encode_events_envelope
from takt.store.db import upgrade

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-admin"
_spec = importlib.util.spec_from_file_location("bench_ingest", Path(__file__).with_name("ingest.py"))
assert _spec and _spec.loader
ingest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ingest)
SITE: str = ingest.SITE
PROBE_SEQ = [0]  # the probe gateway's last sequence number


def event(worker: str, kind: str, gateway: str, seq: int, ts: datetime) -> bytes:
    return orjson.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "timestamp": ts.isoformat(),
            "worker_id": worker,
            "station_id": f"s{seq % 12}",
            "event_type": kind,
            "confidence": 0.9,
            "count": 1 if kind == "product_count" else 0,
            "gateway_id": gateway,
            "seq": seq,
            "model_version": "bench@1",
        }
    )


class Load:
    """A gateway publishing ``rate`` events/s (batches of 100, live timestamps) until stopped."""

    def __init__(self, gateways: Any, name: str, rate: int) -> None:
        self.gateways, self.name, self.rate = gateways, name, rate
        self.seq = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def batch(self, n: int) -> None:
        now = datetime.now(UTC)
        first = self.seq + 1
        payloads = []
        for _ in range(n):
            self.seq += 1
            kind = ("working", "idle", "absent", "product_count")[self.seq % 4]
            payloads.append(event(f"w{self.seq % 40}", kind, self.name, self.seq, now))
        self.gateways.publish(self.name, first, encode_events_envelope(self.name, payloads))

    def run(self) -> None:
        began = time.monotonic()
        while not self.stop.is_set():
            self.batch(100)
            delay = began + self.seq / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)


class Dashboard:
    """Listens to the live stream like the page and refetches the metrics on every change."""

    def __init__(self, base: str) -> None:
        self.base = base
        # (time the refetch was sent, time its answer arrived)
        self.refetches: list[tuple[float, float]] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with (
            httpx.Client(base_url=self.base, headers=headers, timeout=None) as client,
            client.stream("GET", "/api/live") as stream,
        ):
            name = ""
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name == "change" and "metrics" in line:
                    sent = time.perf_counter()
                    client.get("/api/metrics/factory").raise_for_status()
                    with self.lock:
                        self.refetches.append((sent, time.perf_counter()))

    def visible_after(self, commit: float, timeout: float = 30) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                for sent, done in self.refetches:
                    if sent >= commit:
                        return done - commit
            time.sleep(0.005)
        return float("inf")


def api_visible(client: httpx.Client, worker: str, commit: float, timeout: float = 60) -> float:
    lo = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    hi = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        r = client.get(f"/api/metrics/workers/{worker}", params={"from": lo, "to": hi})
        if r.status_code == 200 and r.json()["total_units_produced"] == 1:
            return time.perf_counter() - commit
        time.sleep(0.01)
    return float("inf")


def probes(
    n: int, client: httpx.Client, gateways: Any, dashboard: Dashboard, tag: str
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {
        k: [] for k in ("http api", "http dashboard", "mqtt api", "mqtt dashboard")
    }
    for i in range(n):
        worker = f"probe-{tag}-{i}"
        if i % 2 == 0:
            body = orjson.loads(event(worker, "product_count", "probe", i, datetime.now(UTC)))
            body.pop("gateway_id"), body.pop("seq")
            body["workstation_id"] = body.pop("station_id")
            r = client.post("/api/events", json=body)
            r.raise_for_status()
            commit, path = time.perf_counter(), "http"
        else:
            PROBE_SEQ[0] += 1
            key = PROBE_SEQ[0]
            payload = encode_events_envelope(
                "probe", [event(worker, "product_count", "probe", key, datetime.now(UTC))]
            )
            gateways.publish("probe", key, payload)
            deadline = time.perf_counter() + 60
            while (("probe", key) in gateways.outstanding) and time.perf_counter() < deadline:
                time.sleep(0.001)
            commit, path = time.perf_counter(), "mqtt"
        out[f"{path} api"].append(api_visible(client, worker, commit))
        out[f"{path} dashboard"].append(dashboard.visible_after(commit))
        time.sleep(0.3)
    return out


def show(title: str, results: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    print(f"{'commit -> visible':24} {'n':>4} {'p50 s':>8} {'p95 s':>8} {'max s':>8}")
    for name, values in results.items():
        v = sorted(values)
        if not v:
            continue
        p95 = v[max(0, round(0.95 * len(v)) - 1)]
        print(f"{name:24} {len(v):4} {statistics.median(v):8.3f} {p95:8.3f} {v[-1]:8.3f}")


def pending(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM event_invalidations").fetchone()
        return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--load", type=int, default=2000, help="background events/s over MQTT")
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--burst", type=int, default=100_000, help="events of the burst (0: none)")
    parser.add_argument("--drain-timeout", type=float, default=300, help="seconds to wait for the queue")
    args = parser.parse_args()
    # A SIGTERM (timeout(1)) still stops the servers and processes started here.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    root = Path(tempfile.mkdtemp(prefix="takt-fresh-"))
    root.chmod(0o755)
    postgres = PostgresServer(root / "postgres", free_port(), durable=True)
    mosquitto = MosquittoServer(root / "mosquitto", free_port())
    procs: list[subprocess.Popen[bytes]] = []
    try:
        postgres.start()
        mosquitto.start()
        dsn = postgres.create_database("bench")
        upgrade(dsn)
        port = free_port()
        env = {
            **os.environ,
            "TAKT_DATABASE_URL": dsn,
            "TAKT_ADMIN_TOKEN": TOKEN,
            "TAKT_RATE_LIMIT_PER_MINUTE": "100000000",
            "TAKT_LOG_LEVEL": "WARNING",
            "TAKT_COLLECTOR_METRICS_PORT": str(free_port()),
        }
        collector_env = {**env, "TAKT_MQTT_URL": mosquitto.add_collector("collector", generate_password())}
        for name, command, extra in (
            ("collector", ["collector"], collector_env),
            ("api", ["api", "--port", str(port)], {**env, "TAKT_MQTT_URL": collector_env["TAKT_MQTT_URL"]}),
        ):
            log = (root / f"{name}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "takt.cli", *command],
                    env=extra,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        base = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the API did not start; see {root}/api.log")
            time.sleep(0.2)
        gateways = ingest.Gateways(mosquitto, ["load", "probe", "burst"], 8)
        time.sleep(2)  # the collector subscribes
        dashboard = Dashboard(base)
        dashboard.thread.start()
        load = Load(gateways, "load", args.load)
        load.thread.start()
        time.sleep(5)
        print(
            f"background load: {args.load:,} events/s over MQTT; collector and API each run the refresher",
            flush=True,
        )
        show("under load", probes(args.probes, client, gateways, dashboard, "steady"))
        if args.burst:
            burst = Load(gateways, "burst", 10**9)
            t0 = time.perf_counter()
            for _ in range(args.burst // 100):
                burst.batch(100)
            while gateways.outstanding and time.perf_counter() - t0 < 600:
                time.sleep(0.01)
            stored = time.perf_counter() - t0
            queued = pending(dsn)
            print(
                f"\nburst: {args.burst:,} events stored in {stored:.1f} s; {queued:,} invalidations queued",
                flush=True,
            )
            samples: list[int] = []
            sampling = threading.Event()

            def sample() -> None:
                while not sampling.is_set():
                    samples.append(pending(dsn))
                    time.sleep(0.5)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            show(
                "during the burst's backlog",
                probes(max(10, args.probes // 2), client, gateways, dashboard, "burst"),
            )
            while pending(dsn) > 1000 and time.perf_counter() - t0 < args.drain_timeout:
                time.sleep(1)
            sampling.set()
            left = pending(dsn)
            drained = "below 1,000" if left <= 1000 else f"still {left:,} (gave up waiting)"
            print(
                f"invalidations queued {time.perf_counter() - t0:.0f} s after the burst began: {drained}; "
                f"max seen {max(samples or [queued]):,}"
            )
        load.stop.set()
        gateways.close()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        mosquitto.stop()
        postgres.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
