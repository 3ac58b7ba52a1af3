"""Ingest benchmark: simulated gateways -> Mosquitto -> `takt collector` -> PostgreSQL.

Starts its own Mosquitto and PostgreSQL (devstack, free ports, fsync on)
and one collector process, then:

1. measures the raw COPY rate of the same database into the events table
   (pre-built rows with the same columns and values as the run's events, as
   many as the run publishes, no conflict handling): the ceiling;
2. streams numbered batches from simulated gateways, 10 % of each batch being
   re-sends of events already sent, each gateway (a thread) with at most
   ``--window`` unacknowledged messages in flight (gateways wait for
   CommitAcks as the edge agent does), and reports sustained events/s from
   first publish to last CommitAck, the publish-to-ack latency of each
   message, and the CPU time each process spent per event;
3. checks the database holds each unique event exactly once.

The collector runs as deployed, its rollup refresher included (rounds take at
most TAKT_REFRESH_MAX_SHARE of the time); ``--no-refresher`` measures the
ingest path alone, as with collectors that leave refreshing to another process.

    .venv/bin/python bench/ingest.py [--events 1000000] [--batch 500] [--gateways 8] [--no-refresher]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

from broker.passwords import generate_password
from devstack import MosquittoServer, PostgresServer
from devstack.system import free_port
from takt.contract import ack_topic, decode_ack, encode_events_envelope, events_topic
from takt.mqtt import MqttEndpoint, connect, make_client
from takt.settings import CommonSettings
from takt.store.db import upgrade
from takt.store.events import EVENT_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
SITE = "bench"


def make_event(gateway: str, seq: int, now: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "timestamp": (now - timedelta(milliseconds=seq % 60_000)).isoformat(),
        "worker_id": f"w{seq % 40}",
        "station_id": f"s{seq % 12}",
        "event_type": ("working", "idle", "absent", "product_count")[seq % 4],
        "confidence": 0.9,
        "count": 1 if seq % 4 == 3 else 0,
        "duration_s": 2.0 if seq % 4 != 3 else None,
        "camera_id": "cam1",
        "gateway_id": gateway,
        "seq": seq,
        "model_version": "person-yolo11n@2026.11.1",
    }


def build_messages(
    gateways: list[str], total: int, batch: int, dup_ratio: float
) -> tuple[list[tuple[str, int, bytes, int]], int]:
    """(gateway, key seq, payload, events) per message, and the number of unique events."""
    now = datetime.now(UTC)
    rng = random.Random(7)
    sent: dict[str, list[bytes]] = {g: [] for g in gateways}
    seqs = dict.fromkeys(gateways, 0)
    messages: list[tuple[str, int, bytes, int]] = []
    unique = produced = 0
    dups = int(batch * dup_ratio)
    while produced < total:
        for gateway in gateways:
            fresh = []
            for _ in range(batch - (dups if sent[gateway] else 0)):
                seqs[gateway] += 1
                fresh.append(
                    orjson.dumps(
                        {k: v for k, v in make_event(gateway, seqs[gateway], now).items() if v is not None}
                    )
                )
            resent = rng.sample(sent[gateway], min(dups, len(sent[gateway])))
            sent[gateway].extend(fresh)
            key = seqs[gateway] - len(fresh) + 1
            payload = encode_events_envelope(gateway, fresh + resent)
            messages.append((gateway, key, payload, len(fresh) + len(resent)))
            unique += len(fresh)
            produced += len(fresh) + len(resent)
    return messages, unique


def raw_copy_rate(dsn: str, rows: int) -> float:
    """Plain COPY of pre-built rows shaped like the run's events (every column the collector writes)."""
    now = datetime.now(UTC)
    data = []
    for seq in range(1, rows + 1):
        event = make_event("ceiling", seq, now)
        duration = event["duration_s"]
        data.append(
            (
                uuid.UUID(event["event_id"]),
                datetime.fromisoformat(event["timestamp"]),
                event["worker_id"],
                event["station_id"],
                event["event_type"],
                event["confidence"],
                event["count"],
                duration,
                duration,
                event["model_version"],
                event["camera_id"],
                SITE,
                event["gateway_id"],
                seq,
                None,
                False,
                None,
                None,
            )
        )
    statement = f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        for start in range(0, rows, 5000):
            with conn.cursor() as cur, cur.copy(statement) as copy:
                for row in data[start : start + 5000]:
                    copy.write_row(row)
            conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("TRUNCATE events")
        conn.commit()
    return rows / elapsed


_TICKS = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used so far), for every process (Linux /proc).

    Includes what its exited children used (PostgreSQL backends and
    autovacuum workers come and go), so a tree's total stays exact.
    """
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
            out[int(entry.name)] = (int(fields[1]), ticks / _TICKS)
    return out


def cpu_by_role(roles: dict[str, tuple[int, bool]]) -> dict[str, float]:
    """CPU seconds used so far by each role: (pid, whether its descendants count too)."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in procs.items():
        children.setdefault(parent, []).append(pid)
    totals = {}
    for role, (root, descendants) in roles.items():
        total, stack = 0.0, [root]
        while stack:
            pid = stack.pop()
            total += procs.get(pid, (0, 0.0))[1]
            if descendants:
                stack += children.get(pid, [])
        totals[role] = total
    return totals


class Gateways:
    """One publishing thread per gateway, each with a bounded window of unacknowledged
    messages, as the edge agent's buffer has (``max_inflight_batches``)."""

    def __init__(self, server: MosquittoServer, names: list[str], window: int) -> None:
        self.windows = {name: threading.Semaphore(window) for name in names}
        self.outstanding: dict[tuple[str, int], float] = {}
        self.latencies: list[float] = []
        self.last_ack = 0.0
        self.lock = threading.Lock()
        self.clients = {}
        for name in names:
            endpoint = MqttEndpoint.from_url(server.add_gateway(SITE, name, generate_password()))
            client = make_client(endpoint, f"bench-{name}")
            subscribed = threading.Event()
            client.on_connect = lambda c, u, f, rc, p, n=name: c.subscribe(ack_topic(SITE, n), qos=1)
            client.on_subscribe = lambda c, u, m, rcs, p, ev=subscribed: ev.set()
            client.on_message = self.on_ack
            connect(client, endpoint)
            client.loop_start()
            if not subscribed.wait(15):
                raise RuntimeError(f"{name} could not subscribe")
            self.clients[name] = client

    def on_ack(self, client: Any, userdata: Any, msg: Any) -> None:
        ack = decode_ack(msg.payload)
        now = time.perf_counter()
        with self.lock:
            for first, last in ack.seq_ranges:
                for key in [k for k in self.outstanding if k[0] == ack.gateway_id and first <= k[1] <= last]:
                    self.latencies.append(now - self.outstanding.pop(key))
                    self.windows[ack.gateway_id].release()
            self.last_ack = now

    def publish(self, gateway: str, key: int, payload: bytes) -> None:
        self.windows[gateway].acquire()
        with self.lock:
            self.outstanding[(gateway, key)] = time.perf_counter()
        self.clients[gateway].publish(events_topic(SITE, gateway), payload, qos=1)

    def _stream_one(self, gateway: str, messages: list[tuple[str, int, bytes, int]]) -> None:
        for _, key, payload, _ in messages:
            self.publish(gateway, key, payload)

    def stream(self, messages: list[tuple[str, int, bytes, int]]) -> None:
        """Publish every message, each gateway in its own thread and in its own order."""
        threads = [
            threading.Thread(target=self._stream_one, args=(name, [m for m in messages if m[0] == name]))
            for name in self.windows
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def close(self) -> None:
        for client in self.clients.values():
            client.disconnect()
            client.loop_stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events published, re-sends included")
    parser.add_argument("--batch", type=int, default=500, help="events per MQTT message")
    parser.add_argument("--gateways", type=int, default=8)
    parser.add_argument(
        "--window",
        type=int,
        default=10,
        help="unacknowledged messages in flight per gateway (the edge agent's max_inflight_batches default)",
    )
    parser.add_argument("--duplicates", type=float, default=0.10)
    parser.add_argument("--copy-rows", type=int, help="rows of the raw COPY ceiling (default: --events)")
    parser.add_argument(
        "--no-refresher", action="store_true", help="TAKT_COLLECTOR_REFRESH_INTERVAL_S=0 for the collector"
    )
    parser.add_argument("--collector-batch", type=int, default=20, help="TAKT_COLLECTOR_BATCH_MAX_MESSAGES")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="takt-bench-"))
    root.chmod(0o755)
    postgres = PostgresServer(root / "postgres", free_port(), durable=True)
    mosquitto = MosquittoServer(root / "mosquitto", free_port())
    collector: subprocess.Popen[bytes] | None = None
    gateways: Gateways | None = None
    try:
        postgres.start()
        mosquitto.start()
        dsn = postgres.create_database("bench")
        upgrade(dsn)
        copy_rows = args.copy_rows or args.events
        print(f"raw COPY of {copy_rows:,} rows ...", flush=True)
        postgres_role = {"postgres": (int((postgres.pgdata / "postmaster.pid").read_text().split()[0]), True)}
        postgres_cpu = cpu_by_role(postgres_role)["postgres"]
        copy_rate = raw_copy_rate(dsn, copy_rows)
        postgres_cpu = cpu_by_role(postgres_role)["postgres"] - postgres_cpu
        per_row = postgres_cpu / copy_rows * 1e6
        print(f"  raw COPY: {copy_rate:,.0f} rows/s (PostgreSQL CPU {per_row:.1f} us/row)", flush=True)

        names = [f"gw{i}" for i in range(args.gateways)]
        metrics_port = free_port()
        messages, unique = build_messages(names, args.events, args.batch, args.duplicates)
        env = {
            **os.environ,
            "TAKT_MQTT_URL": mosquitto.add_collector("collector", generate_password()),
            "TAKT_DATABASE_URL": dsn,
            "TAKT_COLLECTOR_CLIENT_ID": "bench-collector",
            "TAKT_COLLECTOR_METRICS_PORT": str(metrics_port),
            "TAKT_COLLECTOR_BATCH_MAX_MESSAGES": str(args.collector_batch),
            # INFO for the "subscriptions granted" line waited for below; the
            # collector logs little else at INFO.
            "TAKT_LOG_LEVEL": "INFO",
        }
        if args.no_refresher:
            env["TAKT_COLLECTOR_REFRESH_INTERVAL_S"] = "0"
        log = (root / "collector.log").open("wb")
        collector = subprocess.Popen(
            [sys.executable, "-m", "takt.cli", "collector"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        gateways = Gateways(mosquitto, names, args.window)
        # Messages published before the collector's subscription exists are
        # dropped by the broker, and these gateways do not re-send: wait for it
        # (a fixed sleep lost the race on a loaded machine).
        deadline = time.monotonic() + 120
        while b"subscriptions granted" not in (root / "collector.log").read_bytes():
            if collector.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the collector did not subscribe:\n" + (root / "collector.log").read_text())
            time.sleep(0.1)
        published = sum(n for *_, n in messages)
        share = os.environ.get(
            "TAKT_REFRESH_MAX_SHARE", CommonSettings.model_fields["refresh_max_share"].default
        )
        refresher = "off" if args.no_refresher else f"on, TAKT_REFRESH_MAX_SHARE {share}"
        print(
            f"streaming {published:,} events ({unique:,} unique) in {len(messages)} messages "
            f"(collector's rollup refresher {refresher}) ...",
            flush=True,
        )
        roles = {
            "collector (main process)": (collector.pid, False),
            "collector (with its decoding processes)": (collector.pid, True),
            "PostgreSQL (every server process)": postgres_role["postgres"],
            "Mosquitto": (mosquitto.pid() or 0, False),
            # Alone: the collector is a child of this process.
            "simulated gateways (this process)": (os.getpid(), False),
        }
        cpu_before = cpu_by_role(roles)
        started = time.perf_counter()
        gateways.stream(messages)
        deadline = time.monotonic() + 600
        while gateways.outstanding and time.monotonic() < deadline:
            time.sleep(0.01)
        if gateways.outstanding:
            raise SystemExit(f"{len(gateways.outstanding)} messages never acknowledged")
        elapsed = gateways.last_ack - started
        cpu_after = cpu_by_role(roles)
        latencies = sorted(gateways.latencies)
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
        assert row is not None
        rows, distinct = row
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[int(len(latencies) * 0.99)]
        rate_in, rate_unique = published / elapsed, unique / elapsed
        print(
            f"  end to end: {rate_in:,.0f} events/s published-to-committed ({rate_unique:,.0f} unique/s), "
            f"{elapsed:.1f} s"
        )
        print(f"  publish-to-ack latency per message: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
        print(f"  vs raw COPY: {rate_in / copy_rate:.2f}x (input), {rate_unique / copy_rate:.2f}x (unique)")
        cpu = {role: cpu_after[role] - cpu_before[role] for role in roles}
        total_cpu = sum(cpu.values()) - cpu["collector (main process)"]
        print(
            f"  CPU while streaming: {total_cpu:.1f} s over {elapsed:.1f} s on "
            f"{os.cpu_count()} cores; per published event:"
        )
        for role, seconds in cpu.items():
            print(f"    {seconds / published * 1e6:5.1f} us  {role}")
        print(
            f"  rows stored {rows:,}, distinct {distinct:,}, unique sent {unique:,}, "
            f"duplicate rows {rows - distinct}"
        )
        scrape = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
        for line in scrape.splitlines():
            if line.startswith(
                ("takt_collector_batch_plan_seconds_", "takt_collector_batch_commit_seconds_")
            ) and ("_sum" in line or "_count" in line):
                print("  collector", line)
        if rows != unique or distinct != unique:
            raise SystemExit("MISMATCH: stored rows differ from unique events sent")
    finally:
        if gateways is not None:
            gateways.close()
        if collector is not None:
            collector.send_signal(signal.SIGTERM)
            collector.wait(30)
        mosquitto.stop()
        postgres.stop(mode="fast")
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
