"""End to end, real processes only: edge agent -> Mosquitto -> `takt collector` -> PostgreSQL.

Every event an agent creates reaches the database exactly once, in order of
creation per station, through a broker outage and through `kill -9` of the
agent (issue 4's proof, with the real collector rather than a stand-in).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from devstack import MosquittoServer
from edge_agent.buffer import EventBuffer
from edge_agent.synthetic import demo_config, render
from takt.store.audit import open_gaps
from tests.collector.conftest import CollectorProcess

pytestmark = [pytest.mark.slow, pytest.mark.wallclock]
GATEWAY = "gw-e2e"


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return render(tmp_path_factory.mktemp("e2e-footage"), seed=5, duration_s=40)


def agent_config(footage: tuple[Path, Path], work: Path, site: str, url: str, **camera: Any) -> Path:
    doc = demo_config(*footage, buffer_path=work / "buffer.sqlite", mqtt_url=url)
    doc.update(site_id=site, gateway_id=GATEWAY)
    doc["camera"].update(camera)
    doc["mqtt"].update({"ack_timeout_s": 2, "heartbeat_s": 1, "reconnect_min_s": 0.2, "reconnect_max_s": 1})
    path = work / f"edge-{len(list(work.glob('edge-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def start_agent(config: Path, *args: str) -> subprocess.Popen[bytes]:
    with (config.parent / "agent.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "takt.cli", "edge", "run", "--config", str(config), *args],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def stored(dsn: str) -> list[tuple[int, str, Any, Any, bool]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT seq, station_id, ts, event_id, coalesce(duration_s, 0) > 0 FROM events "
            "WHERE gateway_id = %s",
            (GATEWAY,),
        ).fetchall()
    return [(int(r[0]), r[1], r[2], r[3], bool(r[4])) for r in rows]


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def assert_exactly_once_in_order(dsn: str, buffer_path: Path) -> None:
    buffer = EventBuffer(buffer_path)
    created, backlog = buffer.max_seq(), buffer.stats().backlog
    buffer.close()
    assert backlog == 0
    rows = stored(dsn)
    assert created > 10
    assert sorted(r[0] for r in rows) == list(range(1, created + 1)), "missing or doubled events"
    assert len({r[3] for r in rows}) == len(rows)
    # A station's time segments (events with a duration) are created in
    # chronological order; their seq order must give the same timeline.
    # (State changes are stamped back to when the state began, so only segments.)
    for station in {r[1] for r in rows}:
        times = [r[2] for r in sorted(rows, key=lambda r: r[0]) if r[1] == station and r[4]]
        assert times, f"{station}: no segments stored"
        assert times == sorted(times), f"{station}: segments out of creation order"
    with psycopg.connect(dsn) as conn:
        assert GATEWAY not in open_gaps(conn)
        assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)


@pytest.fixture
def collector(collector_process: Callable[..., CollectorProcess]) -> Iterator[CollectorProcess]:
    process = collector_process()
    process.start()
    yield process


def test_broker_outage_mid_run_loses_and_doubles_nothing(
    footage: tuple[Path, Path],
    tmp_path: Path,
    site_id: str,
    gateway_url: Callable[[str, str], str],
    mosquitto_server: MosquittoServer,
    collector: CollectorProcess,
    database: str,
) -> None:
    config = agent_config(footage, tmp_path, site_id, gateway_url(site_id, GATEWAY), realtime=True)
    agent = start_agent(config, "--exit-at-end", "--drain-timeout", "90")
    try:
        assert wait_for(lambda: len(stored(database)) >= 5, 60), "no events reached the database"
        mosquitto_server.stop()
        try:
            time.sleep(6)  # the agent keeps creating events into its buffer meanwhile
        finally:
            mosquitto_server.start()
        assert agent.wait(timeout=180) == 0, (tmp_path / "agent.log").read_text()[-3000:]
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert_exactly_once_in_order(database, tmp_path / "buffer.sqlite")
    assert wait_for(lambda: rollups_current(database), 30), "the collector did not refresh the rollups"


def rollups_current(dsn: str) -> bool:
    """The collector's own refresher consumed every invalidation and built hourly rollups."""
    with psycopg.connect(dsn) as conn:
        pending = conn.execute("SELECT count(*) FROM event_invalidations").fetchone()
        hours = conn.execute("SELECT count(*) FROM rollup_worker_hour").fetchone()
    return pending == (0,) and hours is not None and hours[0] > 0


def test_agent_kill_9_then_restart_loses_and_doubles_nothing(
    footage: tuple[Path, Path],
    tmp_path: Path,
    site_id: str,
    gateway_url: Callable[[str, str], str],
    collector: CollectorProcess,
    database: str,
) -> None:
    url = gateway_url(site_id, GATEWAY)
    # Recorded footage is stamped from its start time and read faster than real
    # time; an hour ago keeps every event inside the collector's clock-skew limits.
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    first = start_agent(
        agent_config(footage, tmp_path, site_id, url, loop=True, start_time=an_hour_ago.isoformat())
    )
    try:
        assert wait_for(lambda: len(stored(database)) >= 100, 90), "no events reached the database"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    # The next run (a later clip) first replays whatever the kill left unacknowledged.
    second = start_agent(
        agent_config(
            footage, tmp_path, site_id, url, start_time=(an_hour_ago + timedelta(minutes=30)).isoformat()
        ),
        "--exit-at-end",
        "--drain-timeout",
        "90",
    )
    assert second.wait(timeout=180) == 0, (tmp_path / "agent.log").read_text()[-3000:]
    assert_exactly_once_in_order(database, tmp_path / "buffer.sqlite")
