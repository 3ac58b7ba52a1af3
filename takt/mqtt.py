"""MQTT connection details shared by the edge agent and the collector (paho-mqtt 2.x)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None

    @classmethod
    def from_url(cls, url: str, ca_file: str | None = None) -> MqttEndpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"MQTT URL {url!r} must start with mqtt:// or mqtts://")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            ca_file=ca_file,
        )


def make_client(
    endpoint: MqttEndpoint,
    client_id: str,
    *,
    manual_ack: bool = False,
) -> mqtt.Client:
    """A paho MQTT v5 client with credentials and TLS set, not yet connected."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    if endpoint.username is not None:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set(ca_certs=endpoint.ca_file, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def connect_properties(session_expiry_s: int, receive_maximum: int | None = None) -> Properties | None:
    if session_expiry_s <= 0 and receive_maximum is None:
        return None
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if session_expiry_s > 0:
        props.SessionExpiryInterval = session_expiry_s
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    return props


def connect(
    client: mqtt.Client,
    endpoint: MqttEndpoint,
    *,
    session_expiry_s: int = 0,
    receive_maximum: int | None = None,
    keepalive: int = 30,
) -> None:
    """Start an asynchronous connection.

    With ``session_expiry_s > 0`` the broker keeps the session (subscriptions
    and queued QoS 1 messages) across reconnects *and* process restarts; paho's
    default would start clean on the first connect of every process.
    ``receive_maximum`` caps the QoS 1 messages the broker sends unacknowledged.
    """
    persistent = session_expiry_s > 0
    client.connect_async(
        endpoint.host,
        endpoint.port,
        keepalive=keepalive,
        clean_start=not persistent,
        properties=connect_properties(session_expiry_s, receive_maximum),
    )
