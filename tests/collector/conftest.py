"""Collector fixtures: a migrated fresh database, collectors in-process or as `takt collector`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from collector.service import Collector
from collector.settings import CollectorSettings
from takt.mqtt import MqttEndpoint, make_client
from takt.store.db import upgrade
from tests.collector.gateway_sim import GatewaySim

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def database(fresh_database: str) -> str:
    upgrade(fresh_database)
    return fresh_database


@pytest.fixture
def conn(database: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to ``database`` in a UTC session."""
    with psycopg.connect(database, autocommit=True, options="-c TimeZone=UTC") as c:
        yield c


def discard_session(mqtt_url: str, client_id: str) -> None:
    """Connect once with a clean start and no expiry, so the broker forgets the session."""
    endpoint = MqttEndpoint.from_url(mqtt_url)
    client = make_client(endpoint, client_id)
    client.connect(endpoint.host, endpoint.port, clean_start=True)
    client.loop_start()
    time.sleep(0.2)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def collector_env(collector_mqtt_url: str, database: str, site_id: str) -> dict[str, str]:
    """TAKT_* settings of a collector that only hears this test's site."""
    return {
        "TAKT_MQTT_URL": collector_mqtt_url,
        "TAKT_DATABASE_URL": database,
        "TAKT_COLLECTOR_SITES": site_id,
        "TAKT_COLLECTOR_SHARE_GROUP": f"g-{uuid.uuid4().hex[:8]}",
        "TAKT_COLLECTOR_METRICS_PORT": "0",
        "TAKT_COLLECTOR_BATCH_MAX_WAIT_MS": "5",
        "TAKT_COLLECTOR_DB_RETRY_MAX_S": "1",
        "TAKT_COLLECTOR_AUDIT_INTERVAL_S": "0.5",
    }


@pytest.fixture
def start_collector(
    collector_env: dict[str, str], collector_user_url: Callable[[str], str]
) -> Iterator[Callable[..., Collector]]:
    """Start an in-process collector (the real service, threads and all), as a broker user of its own."""
    started: list[Collector] = []

    def start(**overrides: Any) -> Collector:
        values: dict[str, Any] = {k.removeprefix("TAKT_").lower(): v for k, v in collector_env.items()}
        values.setdefault("collector_client_id", f"col-{uuid.uuid4().hex[:8]}")
        values.update(overrides)
        if "mqtt_url" not in overrides:
            # The broker's client id is the user name: one user per collector.
            values["mqtt_url"] = collector_user_url(values["collector_client_id"])
        collector = Collector(CollectorSettings(**values))
        collector.start()
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.stop()
        discard_session(collector.settings.mqtt_url, collector.settings.collector_client_id)


class CollectorProcess:
    """`takt collector` as a child process, for kill -9 and restarts."""

    def __init__(self, env: dict[str, str], log_file: Path) -> None:
        self.env = env
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> None:
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "takt.cli", "collector"],
                env={**os.environ, **self.env},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "subscriptions granted" in self.log_file.read_text()[offset:]:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"collector did not start:\n{self.log_file.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def collector_process(
    collector_env: dict[str, str], collector_user_url: Callable[[str], str], tmp_path: Path
) -> Iterator[Callable[..., CollectorProcess]]:
    """`takt collector` processes, each a broker user of its own (the user name is the client id)."""
    made: list[CollectorProcess] = []

    def make(**env: str) -> CollectorProcess:
        client_id = f"col-{uuid.uuid4().hex[:8]}"
        proc = CollectorProcess(
            {
                **collector_env,
                "TAKT_COLLECTOR_CLIENT_ID": client_id,
                "TAKT_MQTT_URL": collector_user_url(client_id),
                **env,
            },
            tmp_path / f"{client_id}.log",
        )
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.terminate()
        discard_session(proc.env["TAKT_MQTT_URL"], proc.env["TAKT_COLLECTOR_CLIENT_ID"])


@pytest.fixture
def gateways(gateway_url: Callable[[str, str], str], site_id: str) -> Iterator[Callable[..., GatewaySim]]:
    made: list[GatewaySim] = []

    def make(gateway_id: str, **kwargs: Any) -> GatewaySim:
        sim = GatewaySim(gateway_url(site_id, gateway_id), site_id, gateway_id, **kwargs)
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.close()


def event_counts(dsn: str) -> tuple[int, int]:
    """(rows, distinct event ids) in the events table."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def stored_ids(dsn: str) -> set[uuid.UUID]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT event_id FROM events").fetchall()}


def processes_with_env(name: str, value: str) -> list[int]:
    """Pids of processes whose environment has ``name=value`` (a collector and its children)."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def metric(collector: Collector, name: str, **labels: str) -> float:
    value = collector.metrics.registry.get_sample_value(name, labels or None)
    return value or 0.0
