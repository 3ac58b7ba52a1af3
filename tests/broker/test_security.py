"""Broker security on a real Mosquitto: credentials and per-gateway ACLs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from devstack import MosquittoServer
from takt.contract import ack_topic, events_topic
from takt.mqtt import MqttEndpoint, connect, make_client

TIMEOUT = 10


class Probe:
    """A connected client that records CONNACK, PUBACK and messages."""

    def __init__(self, url: str, client_id: str, session_expiry_s: int = 0) -> None:
        self.endpoint = MqttEndpoint.from_url(url)
        self.client = make_client(self.endpoint, client_id)
        self.session_expiry_s = session_expiry_s
        self.connack: ReasonCode | None = None
        self.session_present: bool | None = None
        self.disconnects: list[ReasonCode] = []
        self.connected = threading.Event()
        self.pubacks: dict[int, ReasonCode] = {}
        self.acked = threading.Condition()
        self.messages: list[mqtt.MQTTMessage] = []
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_message = lambda _c, _u, msg: self.messages.append(msg)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_disconnect = lambda _c, _u, _f, rc, _p: self.disconnects.append(rc)

    def _on_connect(self, _c: mqtt.Client, _u: object, flags: Any, rc: ReasonCode, _p: object) -> None:
        self.connack = rc
        self.session_present = bool(flags.session_present)
        self.connected.set()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        with self.acked:
            self.pubacks[mid] = rc
            self.acked.notify_all()

    def __enter__(self) -> Probe:
        connect(self.client, self.endpoint, session_expiry_s=self.session_expiry_s)
        self.client.loop_start()
        assert self.connected.wait(TIMEOUT), "no CONNACK"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        mid = self.client.publish(topic, payload, qos=1).mid
        with self.acked:
            assert self.acked.wait_for(lambda: mid in self.pubacks, TIMEOUT), "no PUBACK"
            return self.pubacks[mid]

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(TIMEOUT)


def test_gateway_publishes_only_under_its_own_prefix(
    collector_mqtt_url: str, gateway_url: Callable[[str, str], str], site_id: str
) -> None:
    url_a = gateway_url(site_id, "gw-a")
    gateway_url(site_id, "gw-b")
    with Probe(collector_mqtt_url, f"collector-{site_id}") as collector, Probe(url_a, "gw-a") as gw_a:
        assert collector.connack is not None and not collector.connack.is_failure
        collector.subscribe(f"takt/v1/{site_id}/+/events")
        assert not gw_a.publish(events_topic(site_id, "gw-a"), b"mine").is_failure
        refused = gw_a.publish(events_topic(site_id, "gw-b"), b"spoofed")
        assert refused.is_failure and refused.getName() == "Not authorized"
        assert gw_a.publish(events_topic("other-site", "gw-a"), b"wrong site").is_failure
        gw_a.publish(events_topic(site_id, "gw-a"), b"mine again")  # a marker after the refusals
        deadline = threading.Event()
        for _ in range(100):
            if len(collector.messages) >= 2:
                break
            deadline.wait(0.05)
        assert [m.payload for m in collector.messages] == [b"mine", b"mine again"]


def test_gateway_reads_only_its_own_acks(
    collector_mqtt_url: str, gateway_url: Callable[[str, str], str], site_id: str
) -> None:
    url_a = gateway_url(site_id, "gw-a")
    with Probe(url_a, "gw-a-reader") as gw_a, Probe(collector_mqtt_url, f"col-{site_id}") as collector:
        gw_a.subscribe(f"takt/v1/{site_id}/+/ack")
        collector.publish(ack_topic(site_id, "gw-b"), b"for b")
        collector.publish(ack_topic(site_id, "gw-a"), b"for a")
        for _ in range(100):
            if gw_a.messages:
                break
            threading.Event().wait(0.05)
        threading.Event().wait(0.3)
        assert [m.payload for m in gw_a.messages] == [b"for a"]


@pytest.mark.parametrize("credentials", ["gw-a:wrong-password@", "nobody:secret@", ""])
def test_wrong_or_missing_credentials_are_refused(
    mosquitto_server: MosquittoServer,
    gateway_url: Callable[[str, str], str],
    site_id: str,
    credentials: str,
) -> None:
    gateway_url(site_id, "gw-a")
    url = f"mqtt://{credentials}{mosquitto_server.host}:{mosquitto_server.port}"
    with Probe(url, "intruder") as probe:
        assert probe.connack is not None
        assert probe.connack.is_failure
        assert probe.connack.getName() in {"Not authorized", "Bad user name or password"}


def _wait_for(condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_gateway_login_cannot_take_over_the_collectors_client_id(
    collector_user_url: Callable[[str], str], gateway_url: Callable[[str, str], str], site_id: str
) -> None:
    """A gateway connecting with the collector's client id neither kicks it off nor gets its messages."""
    name = f"col-{site_id}"
    url_a = gateway_url(site_id, "gw-a")
    with Probe(collector_user_url(name), name, session_expiry_s=300) as collector:
        assert collector.connack is not None and not collector.connack.is_failure
        collector.subscribe(f"takt/v1/{site_id}/+/events")
        with Probe(url_a, name) as intruder:
            assert intruder.connack is not None and not intruder.connack.is_failure
            # Without the binding the broker drops the collector ("session taken over").
            time.sleep(1.0)
            assert collector.disconnects == []
            assert not intruder.publish(events_topic(site_id, "gw-a"), b"after the intruder").is_failure
            assert _wait_for(lambda: [m.payload for m in collector.messages] == [b"after the intruder"])
            assert intruder.messages == []
        assert collector.disconnects == []


def test_a_gateway_login_cannot_discard_the_collectors_queued_messages(
    collector_user_url: Callable[[str], str], gateway_url: Callable[[str, str], str], site_id: str
) -> None:
    """Messages queued for a collector that is away survive a gateway's clean start with its client id."""
    name = f"col-{site_id}"
    url = collector_user_url(name)
    url_a = gateway_url(site_id, "gw-a")
    with Probe(url, name, session_expiry_s=300) as collector:
        collector.subscribe(f"takt/v1/{site_id}/+/events")
    with Probe(url_a, "gw-a") as gateway:
        assert not gateway.publish(events_topic(site_id, "gw-a"), b"queued while away").is_failure
    # A clean start with the collector's id would otherwise discard its session.
    with Probe(url_a, name) as intruder:
        time.sleep(0.3)
        assert intruder.messages == []
    with Probe(url, name, session_expiry_s=300) as collector:
        assert collector.session_present is True
        assert _wait_for(lambda: [m.payload for m in collector.messages] == [b"queued while away"])
    with Probe(url, name):  # clean start, no expiry: the broker forgets the session
        pass
