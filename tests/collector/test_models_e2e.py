"""A gateway in shadow mode through the real broker and collector: both versions stored and mirrored."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from collector.service import Collector
from edge_agent.agent import Agent
from edge_agent.config import parse_config
from takt.store.audit import open_gaps
from tests.models.footage import CANDIDATE, PRODUCTION, edge_config

pytestmark = pytest.mark.wallclock  # dates computed from now; scripts/moved_clock.py moves the clock


def _wait_for(condition: Callable[[], bool], timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_shadow_gateway_end_to_end(
    start_collector: Callable[..., Collector],
    gateway_url: Callable[[str, str], str],
    database: str,
    site_id: str,
    tmp_path: Path,
) -> None:
    start_collector()
    config = edge_config(tmp_path, seconds=20, gateway_id="gw-ml")
    config["site_id"] = site_id
    config["mqtt"] = {"url": gateway_url(site_id, "gw-ml"), "heartbeat_s": 0.5}
    agent = Agent(parse_config(config))
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), name="agent")
    runner.start()

    def query(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(database) as conn:
            return conn.execute(sql).fetchall()

    try:
        # The clip ended (segments closed) and the collector acknowledged everything.
        assert _wait_for(lambda: agent.camera_state == "ended" and agent.buffer.stats().backlog == 0)
        # The heartbeat names both models while the agent runs.
        assert _wait_for(
            lambda: (
                query("SELECT status->>'model_version', status->>'shadow_model_version' FROM gateways")
                == [(PRODUCTION, CANDIDATE)]
            )
        )
    finally:
        stop.set()
        runner.join(30)
    stored = query("SELECT shadow, model_version, count(*) FROM events GROUP BY 1, 2 ORDER BY 1")
    made = agent.events_made + (agent.shadow_agent.events_made if agent.shadow_agent else 0)
    assert [(s, m) for s, m, _ in stored] == [(False, PRODUCTION), (True, CANDIDATE)]
    assert sum(n for *_, n in stored) == made
    with psycopg.connect(database) as conn:
        assert "gw-ml" not in open_gaps(conn)  # shadow events share the gateway's one sequence
    assert query("SELECT model_version, gateway_id, shadow, site_id FROM cv_model_gateways ORDER BY 1") == [
        (PRODUCTION, "gw-ml", False, site_id),
        (CANDIDATE, "gw-ml", True, site_id),
    ]
