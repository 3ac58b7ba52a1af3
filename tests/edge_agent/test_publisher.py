from __future__ import annotations

import collections
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from devstack import MosquittoServer
from edge_agent.buffer import EventBuffer
from edge_agent.publisher import BrokerAuthError, Publisher, PublisherSettings
from takt.contract import Event, GatewayState, decode_status, status_topic
from takt.mqtt import MqttEndpoint, make_client
from tests.edge_agent.acker import StandInAcker, wait_until

FAST = PublisherSettings(
    batch_max_events=50,
    ack_timeout_s=1.5,
    heartbeat_s=0.5,
    reconnect_min_s=0.1,
    reconnect_max_s=0.5,
    connect_timeout_s=5,
    replay_max_events_per_s=100_000,
)


@pytest.fixture
def started() -> Iterator[list[Publisher]]:
    pubs: list[Publisher] = []
    yield pubs
    for pub in pubs:
        pub.stop()


def _publisher(
    buf: EventBuffer, url: str, site: str, gw: str, settings: PublisherSettings = FAST
) -> Publisher:
    return Publisher(buf, MqttEndpoint.from_url(url), site, gw, settings)


def _all_delivered(acker: StandInAcker, buf: EventBuffer, last: int) -> Callable[[], bool]:
    return lambda: buf.stats().backlog == 0 and set(acker.seqs()) >= set(range(1, last + 1))


def _assert_duplicates_are_resends(acker: StandInAcker) -> None:
    by_seq: dict[int, set[uuid.UUID]] = collections.defaultdict(set)
    for event in acker.events():
        assert event.seq is not None
        by_seq[event.seq].add(event.event_id)
    assert all(len(ids) == 1 for ids in by_seq.values()), "a seq arrived with two different event ids"


def test_events_leave_buffer_only_after_commit_ack(
    tmp_path: Path,
    site_id: str,
    gateway_url: Callable[[str, str], str],
    acker_factory: Callable[..., StandInAcker],
    events: Callable[[int], list[Event]],
    started: list[Publisher],
) -> None:
    acker = acker_factory(site_id)
    acker.paused = True  # receives but does not ack yet
    buf = EventBuffer(tmp_path / "b.sqlite")
    buf.append(events(120))
    pub = _publisher(buf, gateway_url(site_id, "gw-1"), site_id, "gw-1")
    pub.start()
    started.append(pub)
    assert acker.wait_for(lambda: len(set(acker.seqs())) == 120)
    # Broker PUBACKs have come back by now, but nothing was committed: all still buffered.
    assert buf.stats().backlog == 120
    acker.paused = False
    # Unacked batches time out and are re-sent; this time they are acknowledged.
    assert acker.wait_for(_all_delivered(acker, buf, 120))
    assert pub.counters.batches_resent >= 1
    _assert_duplicates_are_resends(acker)
    assert max(acker.seqs()) == 120


def test_lost_acks_are_made_up_by_resending(
    tmp_path: Path,
    site_id: str,
    gateway_url: Callable[[str, str], str],
    acker_factory: Callable[..., StandInAcker],
    events: Callable[[int], list[Event]],
    started: list[Publisher],
) -> None:
    acker = acker_factory(site_id, drop_ack=lambda n: n % 3 == 1)  # lose every third ack
    buf = EventBuffer(tmp_path / "b.sqlite")
    pub = _publisher(buf, gateway_url(site_id, "gw-1"), site_id, "gw-1")
    pub.start()
    started.append(pub)
    assert pub.wait_connected(10)
    for _ in range(5):
        buf.append(events(40))
    assert acker.wait_for(_all_delivered(acker, buf, 200))
    assert acker.acks_dropped >= 1
    assert len(acker.seqs()) > 200  # some events came twice ...
    _assert_duplicates_are_resends(acker)  # ... always as the same event


def test_broker_restart_mid_run_loses_nothing(
    tmp_path: Path,
    site_id: str,
    gateway_url: Callable[[str, str], str],
    acker_factory: Callable[..., StandInAcker],
    events: Callable[[int], list[Event]],
    mosquitto_server: MosquittoServer,
    started: list[Publisher],
) -> None:
    acker = acker_factory(site_id)
    buf = EventBuffer(tmp_path / "b.sqlite")
    pub = _publisher(buf, gateway_url(site_id, "gw-1"), site_id, "gw-1")
    pub.start()
    started.append(pub)
    buf.append(events(100))
    assert acker.wait_for(_all_delivered(acker, buf, 100))
    connects = pub.counters.connects
    try:
        mosquitto_server.stop()
        buf.append(events(300))  # produced during the outage: buffered on disk
        assert acker.wait_for(lambda: not pub.connected.is_set(), 10)
        assert buf.stats().backlog == 300
    finally:
        mosquitto_server.start()
    assert acker.wait_for(_all_delivered(acker, buf, 400), 60)
    assert pub.counters.connects > connects
    _assert_duplicates_are_resends(acker)
    assert mosquitto_server.running()


def test_replay_is_rate_limited_and_live_events_still_flow(
    tmp_path: Path,
    site_id: str,
    gateway_url: Callable[[str, str], str],
    acker_factory: Callable[..., StandInAcker],
    events: Callable[[int], list[Event]],
    started: list[Publisher],
) -> None:
    acker = acker_factory(site_id)
    buf = EventBuffer(tmp_path / "b.sqlite")
    buf.append(events(600))  # backlog from before the agent (re)started
    settings = PublisherSettings(
        batch_max_events=50, ack_timeout_s=30, heartbeat_s=0.5, replay_max_events_per_s=150
    )
    pub = _publisher(buf, gateway_url(site_id, "gw-1"), site_id, "gw-1", settings)
    pub.start()
    started.append(pub)
    assert pub.wait_connected(10)
    assert pub.replaying
    live = buf.append(events(5))
    # Live events overtake the backlog (600 at 150/s): they arrive while it is still replaying.
    assert acker.wait_for(lambda: set(live) <= set(acker.seqs()), 10)
    assert pub.replaying
    backlog_seen = [s for s in acker.seqs() if s <= 600]
    assert backlog_seen == sorted(backlog_seen), "backlog must be replayed oldest first"
    assert len(backlog_seen) < 600
    assert acker.wait_for(_all_delivered(acker, buf, 605), 30)
    assert not pub.replaying


def test_status_birth_heartbeat_and_dropped_count(
    tmp_path: Path,
    site_id: str,
    gateway_url: Callable[[str, str], str],
    collector_mqtt_url: str,
    events: Callable[[int], list[Event]],
    started: list[Publisher],
) -> None:
    buf = EventBuffer(tmp_path / "b.sqlite", max_bytes=8_000)
    buf.append(events(100))  # overflows: oldest dropped, counted
    dropped = buf.stats().dropped
    assert dropped > 0
    statuses: list[bytes] = []
    got = threading.Event()
    endpoint = MqttEndpoint.from_url(collector_mqtt_url)
    watcher = make_client(endpoint, f"watch-{uuid.uuid4().hex[:6]}")

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        statuses.append(bytes(msg.payload))
        got.set()

    watcher.on_message = on_message
    watcher.connect(endpoint.host, endpoint.port)
    watcher.subscribe(status_topic(site_id, "gw-1"), qos=1)
    watcher.loop_start()
    try:
        pub = Publisher(
            buf,
            MqttEndpoint.from_url(gateway_url(site_id, "gw-1")),
            site_id,
            "gw-1",
            FAST,
            status_fields=lambda: {"camera_state": "ok", "model_version": "motion@1", "fps": 5.0},
        )
        pub.start()
        assert got.wait(10)
        assert wait_until(lambda: len(statuses) >= 3, 10)
        status = decode_status(statuses[-1])
        assert status.state is GatewayState.ONLINE
        assert status.dropped == dropped
        assert status.camera_state == "ok"
        assert status.backlog == buf.stats().backlog
        pub.stop()
        assert wait_until(lambda: decode_status(statuses[-1]).state is GatewayState.OFFLINE, 10)
    finally:
        watcher.loop_stop()
        watcher.disconnect()


def test_bad_credentials_stop_with_a_clear_error(
    tmp_path: Path, site_id: str, gateway_url: Callable[[str, str], str], started: list[Publisher]
) -> None:
    url = gateway_url(site_id, "gw-1")
    wrong = url.replace("gw-1:", "gw-1:x", 1)
    pub = _publisher(EventBuffer(tmp_path / "b.sqlite"), wrong, site_id, "gw-1")
    pub.start()
    started.append(pub)
    assert pub._thread is not None
    pub._thread.join(15)
    assert not pub._thread.is_alive()
    assert isinstance(pub.fatal, BrokerAuthError)
    assert "refused" in str(pub.fatal)
    # The collector's wording (takt.mqtt.refusal_message): the code, its name, what to check.
    assert re.search(r"broker refused gateway 'gw-1' \(CONNACK reason 0x8[67]", str(pub.fatal))
    assert "check the user name and password" in str(pub.fatal)


def test_acl_mismatch_stops_with_a_clear_error(
    tmp_path: Path,
    site_id: str,
    gateway_url: Callable[[str, str], str],
    events: Callable[[int], list[Event]],
    started: list[Publisher],
) -> None:
    url = gateway_url(site_id, "gw-1")  # registered for this site ...
    buf = EventBuffer(tmp_path / "b.sqlite")
    buf.append(events(3))
    pub = _publisher(buf, url, "another-site", "gw-1")  # ... but configured for another one
    pub.start()
    started.append(pub)
    assert pub._thread is not None
    pub._thread.join(15)
    assert not pub._thread.is_alive()
    assert isinstance(pub.fatal, BrokerAuthError)
    assert "ACL" in str(pub.fatal)
    assert buf.stats().backlog == 3  # nothing lost: it stays buffered for a corrected config
