"""The agent as a real process: kill -9 mid-run loses no committed event; seq survives restarts."""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml

from edge_agent.buffer import EventBuffer
from edge_agent.synthetic import demo_config
from takt.contract import GatewayState, decode_status, status_topic
from takt.mqtt import MqttEndpoint, make_client
from tests.edge_agent.acker import StandInAcker, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.wallclock]


def _config(demo: tuple[Path, Path], tmp_path: Path, site: str, url: str, **camera: Any) -> Path:
    video, truth = demo
    doc = demo_config(video, truth, buffer_path=tmp_path / "buffer.sqlite", mqtt_url=url)
    doc["site_id"] = site
    doc["gateway_id"] = "gw-1"
    doc["camera"].update(camera)
    doc["mqtt"].update({"ack_timeout_s": 2, "heartbeat_s": 1, "reconnect_min_s": 0.2, "reconnect_max_s": 1})
    path = tmp_path / f"edge-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _agent(config: Path, *args: str) -> subprocess.Popen[bytes]:
    with (config.parent / "agent.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "takt.cli", "edge", "run", "--config", str(config), *args],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def _watch_status(collector_url: str, topic: str) -> tuple[mqtt.Client, list[bytes]]:
    seen: list[bytes] = []
    endpoint = MqttEndpoint.from_url(collector_url)
    client = make_client(endpoint, f"watch-{uuid.uuid4().hex[:6]}")
    subscribed = threading.Event()
    client.on_message = lambda c, u, m: seen.append(bytes(m.payload))
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect(endpoint.host, endpoint.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    assert subscribed.wait(10)
    return client, seen


def test_kill_9_mid_run_then_restart_loses_nothing(
    demo_footage: tuple[Path, Path],
    tmp_path: Path,
    site_id: str,
    gateway_url: Callable[[str, str], str],
    collector_user_url: Callable[[str], str],
    acker_factory: Callable[..., StandInAcker],
) -> None:
    acker = acker_factory(site_id, drop_ack=lambda n: n % 4 == 0)  # and some acks get lost
    # The first run's looping clip stays within hours of its start; the second run is a day later.
    day2 = datetime.fromisoformat(json.loads(demo_footage[1].read_text())["start_time"]) + timedelta(hours=12)
    url = gateway_url(site_id, "gw-1")
    watcher, statuses = _watch_status(
        collector_url=collector_user_url(f"watch-{site_id}"), topic=status_topic(site_id, "gw-1")
    )
    try:
        first = _agent(_config(demo_footage, tmp_path, site_id, url, loop=True, realtime=False))
        try:
            assert acker.wait_for(lambda: len(set(acker.seqs())) >= 150, 60), "agent produced no events"
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert first.returncode == -signal.SIGKILL
        # No clean disconnect: the broker publishes the retained last will.
        assert wait_until(
            lambda: bool(statuses) and decode_status(statuses[-1]).state is GatewayState.OFFLINE, 15
        )
        probe = EventBuffer(tmp_path / "buffer.sqlite")
        assert probe.max_seq() >= 150
        probe.close()

        # Restart on a later day's footage without looping: replays the backlog, adds new events, exits.
        second = _agent(
            _config(demo_footage, tmp_path, site_id, url, loop=False, start_time=day2 + timedelta(hours=12)),
            "--exit-at-end",
            "--drain-timeout",
            "60",
        )
        second.wait(timeout=120)
        assert second.returncode == 0, (tmp_path / "agent.log").read_text()[-3000:]
    finally:
        watcher.loop_stop()
        watcher.disconnect()

    buffer = EventBuffer(tmp_path / "buffer.sqlite")
    assert buffer.stats().backlog == 0
    last = buffer.max_seq()
    buffer.close()
    events = acker.events()
    seqs = {e.seq for e in events}
    # Every seq ever committed arrived: nothing lost to the kill, the lost acks or the restart.
    assert seqs == set(range(1, last + 1))
    by_seq: dict[int | None, set[uuid.UUID]] = collections.defaultdict(set)
    for e in events:
        by_seq[e.seq].add(e.event_id)
    assert all(len(ids) == 1 for ids in by_seq.values()), "duplicates must be re-sends of the same event"
    # seq kept increasing across the restart: the second run's events come after the first's.
    second_run = [e.seq for e in events if e.timestamp >= day2 and e.seq is not None]
    first_run = [e.seq for e in events if e.timestamp < day2 and e.seq is not None]
    assert second_run and min(second_run) > max(first_run)
    assert decode_status(statuses[-1]).state is GatewayState.OFFLINE  # clean stop says offline too


def test_sigterm_stops_cleanly_and_says_offline(
    demo_footage: tuple[Path, Path],
    tmp_path: Path,
    site_id: str,
    gateway_url: Callable[[str, str], str],
    collector_user_url: Callable[[str], str],
    acker_factory: Callable[..., StandInAcker],
) -> None:
    acker = acker_factory(site_id)
    watcher, statuses = _watch_status(
        collector_url=collector_user_url(f"watch-{site_id}"), topic=status_topic(site_id, "gw-1")
    )
    try:
        agent = _agent(_config(demo_footage, tmp_path, site_id, gateway_url(site_id, "gw-1"), loop=True))
        assert acker.wait_for(lambda: len(acker.seqs()) >= 20, 60)
        online = [decode_status(s) for s in statuses if decode_status(s).state is GatewayState.ONLINE]
        assert online and online[-1].model_version == "motion-mog2@1"
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0
        assert wait_until(lambda: decode_status(statuses[-1]).state is GatewayState.OFFLINE, 10)
    finally:
        watcher.loop_stop()
        watcher.disconnect()
    buffer = EventBuffer(tmp_path / "buffer.sqlite")
    # Whatever was committed is either acknowledged or still buffered for the next start.
    acked_or_buffered = set(acker.seqs()) | {seq for seq, _ in buffer.read_after(0, 1_000_000)}
    assert acked_or_buffered == set(range(1, buffer.max_seq() + 1))
    buffer.close()
