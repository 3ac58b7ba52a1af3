"""`takt collector` as real processes through faults: nothing lost, nothing doubled.

Each test streams numbered events from simulated gateways, breaks something
mid-stream, and then checks the database holds exactly the unique events sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest

from devstack import MosquittoServer, PostgresServer
from takt.store.audit import open_gaps
from tests.collector.conftest import CollectorProcess, event_counts, processes_with_env, stored_ids
from tests.collector.gateway_sim import GatewaySim

pytestmark = pytest.mark.slow


@contextmanager
def streaming(
    sims: list[GatewaySim], per_gateway: int, chunk: int = 100, pause_s: float = 0.1
) -> Iterator[None]:
    """Publish ``per_gateway`` events from each gateway over a few seconds, in the background."""

    def run() -> None:
        for _ in range(per_gateway // chunk):
            for sim in sims:
                sim.send(sim.make_events(chunk))
            time.sleep(pause_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def wait_until_stored(dsn: str, at_least: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            rows, _ = event_counts(dsn)
        except psycopg.OperationalError:
            rows = 0
        if rows >= at_least:
            return rows
        time.sleep(0.1)
    return event_counts(dsn)[0]


def assert_exact(dsn: str, sims: list[GatewaySim]) -> None:
    for sim in sims:
        assert sim.wait_acked(120), f"{sim.gateway_id}: {sim.pending} events never acknowledged"
    sent = set().union(*(sim.sent_ids for sim in sims))
    assert event_counts(dsn) == (len(sent), len(sent))
    assert stored_ids(dsn) == sent
    with psycopg.connect(dsn) as conn:
        assert open_gaps(conn) == {}


def test_kill_9_and_restart_loses_nothing_even_without_resends(
    collector_process: Callable[..., CollectorProcess], gateways: Callable[..., GatewaySim], database: str
) -> None:
    collector = collector_process()
    collector.start()
    # Re-sends effectively off: only the broker's persistent session can save the messages.
    sims = [gateways(f"gw-{i}", resend_after_s=3600) for i in range(2)]
    with streaming(sims, per_gateway=3000):
        at_fault = wait_until_stored(database, 500)
        client_id = collector.env["TAKT_COLLECTOR_CLIENT_ID"]
        assert len(processes_with_env("TAKT_COLLECTOR_CLIENT_ID", client_id)) >= 2  # with a decoder
        collector.kill()
        # Its decoding processes follow it rather than linger as orphans.
        deadline = time.monotonic() + 10
        while processes_with_env("TAKT_COLLECTOR_CLIENT_ID", client_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_with_env("TAKT_COLLECTOR_CLIENT_ID", client_id) == []
        collector.start()
    assert at_fault < 6000  # the kill really was mid-stream
    sent = set().union(*(sim.sent_ids for sim in sims))
    assert wait_until_stored(database, len(sent)) == len(sent)
    assert stored_ids(database) == sent
    assert event_counts(database) == (len(sent), len(sent))


def test_kill_9_and_restart_with_resends_acknowledges_everything(
    collector_process: Callable[..., CollectorProcess], gateways: Callable[..., GatewaySim], database: str
) -> None:
    collector = collector_process()
    collector.start()
    sims = [gateways(f"gw-{i}", resend_after_s=2) for i in range(2)]
    with streaming(sims, per_gateway=3000):
        at_fault = wait_until_stored(database, 500)
        collector.kill()
        time.sleep(2)
        collector.start()
    assert at_fault < 6000
    assert_exact(database, sims)


def test_broker_restart_mid_stream(
    collector_process: Callable[..., CollectorProcess],
    gateways: Callable[..., GatewaySim],
    database: str,
    mosquitto_server: MosquittoServer,
) -> None:
    collector = collector_process()
    collector.start()
    sims = [gateways(f"gw-{i}", resend_after_s=2) for i in range(2)]
    try:
        with streaming(sims, per_gateway=3000):
            at_fault = wait_until_stored(database, 500)
            mosquitto_server.stop()
            time.sleep(1)
            mosquitto_server.start()
    finally:
        mosquitto_server.start()  # the broker is shared by the whole session
    assert at_fault < 6000
    assert_exact(database, sims)
    assert collector.process is not None and collector.process.poll() is None


def test_database_outage_mid_stream(
    collector_process: Callable[..., CollectorProcess],
    gateways: Callable[..., GatewaySim],
    database: str,
    postgres_server: PostgresServer,
) -> None:
    collector = collector_process()
    collector.start()
    sims = [gateways(f"gw-{i}", resend_after_s=2) for i in range(2)]
    try:
        with streaming(sims, per_gateway=3000, pause_s=0.2):
            at_fault = wait_until_stored(database, 500)
            postgres_server.stop()
            time.sleep(10)
            postgres_server.start()
    finally:
        postgres_server.start()  # shared by the whole session
    assert at_fault < 6000
    assert_exact(database, sims)
    log = collector.log_file.read_text()
    assert "database unavailable" in log and "database available again" in log
    assert collector.process is not None and collector.process.poll() is None


def test_two_collectors_share_the_load_and_survive_losing_one(
    collector_process: Callable[..., CollectorProcess], gateways: Callable[..., GatewaySim], database: str
) -> None:
    first, second = collector_process(), collector_process()
    first.start()
    second.start()
    sims = [gateways(f"gw-{i}", resend_after_s=2) for i in range(3)]
    sims[0].send(sims[0].make_events(2000))
    assert_exact(database, sims)
    with psycopg.connect(database) as conn:
        writers = conn.execute(
            "SELECT count(DISTINCT application_name) FROM pg_stat_activity "
            "WHERE application_name LIKE 'col-%%' AND datname = current_database()"
        ).fetchone()
    assert writers == (2,)  # both collectors hold a connection: both wrote
    with streaming(sims, per_gateway=2000):
        at_fault = wait_until_stored(database, 3000)
        second.kill()
    assert at_fault < 8000
    assert_exact(database, sims)


def test_duplicate_flood_through_a_collector_process(
    collector_process: Callable[..., CollectorProcess], gateways: Callable[..., GatewaySim], database: str
) -> None:
    collector = collector_process()
    collector.start()
    sim = gateways("gw-flood", batch_size=500)
    events = sim.make_events(3000)
    for _ in range(3):
        sim.send(events)
    assert_exact(database, [sim])
    assert event_counts(database) == (3000, 3000)
    assert collector.terminate() == 0  # SIGTERM: a clean stop
    assert "stopped" in collector.log_file.read_text()
