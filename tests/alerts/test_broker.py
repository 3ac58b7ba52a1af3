"""The alert topics' ACL on a real Mosquitto: the andon user reads incidents and nothing else."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner

from broker.acl import Role, andon_rules, gateway_rules, read_acl, user_role
from broker.cli import broker
from devstack import MosquittoServer
from takt.contract.topics import TopicError, alerts_topic, events_topic
from takt.mqtt import MqttEndpoint, make_client
from tests.alerts.conftest import AlertBroker, wait_for


def _client(url: str) -> mqtt.Client:
    endpoint = MqttEndpoint.from_url(url)
    client = make_client(endpoint, uuid.uuid4().hex[:8])
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    return client


def test_andon_reads_alerts_only_and_only_the_alerts_user_writes_them(
    alert_broker: AlertBroker, mosquitto_server: MosquittoServer, gateway_url: Any, site_id: str
) -> None:
    got: list[str] = []
    subscribed = threading.Event()
    andon = _client(alert_broker.andon_url)
    andon.on_message = lambda _c, _u, msg: got.append(msg.topic)
    andon.on_subscribe = lambda *_: subscribed.set()
    andon.subscribe([(f"takt/v1/{site_id}/#", 1)])
    assert subscribed.wait(10)
    gateway = _client(gateway_url(site_id, "gw-a"))
    alerts = _client(alert_broker.alerts_url)
    try:
        gateway.publish(events_topic(site_id, "gw-a"), b"{}", qos=1).wait_for_publish(5)
        # A gateway may not fake an incident.
        gateway.publish(alerts_topic(site_id, 7), b"fake", qos=1).wait_for_publish(5)
        alerts.publish(alerts_topic(site_id, 8), b"real", qos=1).wait_for_publish(5)
        wait_for(lambda: got, 10, "the incident message")
        # A marker after everything: what was to arrive has arrived.
        alerts.publish(alerts_topic(site_id, 9), b"", qos=1).wait_for_publish(5)
        wait_for(lambda: alerts_topic(site_id, 9) in got, 10, "the marker")
        assert got == [alerts_topic(site_id, 8), alerts_topic(site_id, 9)]
    finally:
        for c in (andon, gateway, alerts):
            c.disconnect()
            c.loop_stop()


def test_alerts_is_no_gateway_name() -> None:
    with pytest.raises(TopicError, match="reserved"):
        gateway_rules("site-1", "alerts")
    with pytest.raises(TopicError):
        alerts_topic("bad/site", 1)


def test_cli_writes_andon_and_alerts_users(tmp_path: Path) -> None:
    acl, pw = tmp_path / "acl", tmp_path / "pw"
    common = ["--acl-file", str(acl), "--password-file", str(pw)]
    runner = CliRunner()
    assert runner.invoke(broker, ["add-alerts", *common]).exit_code == 0
    assert runner.invoke(broker, ["add-andon", "--site", "plant-1", *common]).exit_code == 0
    assert user_role(acl, "alerts") is Role.ALERTS
    assert user_role(acl, "andon") is Role.ANDON
    assert read_acl(acl)[1]["andon"] == andon_rules("plant-1") == ["topic read takt/v1/plant-1/alerts/+"]
    # A gateway cannot take the andon user's name (and its session).
    refused = runner.invoke(broker, ["add-gateway", "andon", "--site", "plant-1", *common])
    assert refused.exit_code != 0
    assert "andon" in refused.output
