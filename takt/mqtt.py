"""MQTT connection details and the failure policy shared by the edge agent and the collector (paho-mqtt 2.x).

The failure policy is one for both sides:

* :func:`classify_connack` sorts a CONNACK reason code into accepted, retryable
  (the broker is busy, unavailable, restarting: try again later) or fatal
  (bad credentials, not authorised, banned, a client id or protocol the broker
  will never accept: retrying cannot help, so the caller stops with
  :func:`refusal_message`'s explanation);
* :class:`ReconnectBackoff` spaces the attempts: exponential with jitter
  (tenacity), so a fleet of gateways that lost the broker together does not
  come back in lockstep.
"""

from __future__ import annotations

import enum
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from tenacity import RetryCallState, Retrying
from tenacity.wait import wait_base, wait_random_exponential

# CONNACK reason codes (MQTT v5) after which reconnecting cannot help.
UNSUPPORTED_PROTOCOL_VERSION = 0x84
CLIENT_ID_NOT_VALID = 0x85
BAD_USER_NAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
BANNED = 0x8A
BAD_AUTHENTICATION_METHOD = 0x8C
# The MQTT 3.1.1 return codes for the same refusals (1: protocol, 2: client id,
# 4: bad user name or password, 5: not authorised).
_V311_FATAL = frozenset({1, 2, 4, 5})
FATAL_CONNACK = frozenset(
    {
        UNSUPPORTED_PROTOCOL_VERSION,
        CLIENT_ID_NOT_VALID,
        BAD_USER_NAME_OR_PASSWORD,
        NOT_AUTHORIZED,
        BANNED,
        BAD_AUTHENTICATION_METHOD,
        *_V311_FATAL,
    }
)
# Credentials or ACL: what an installer fixes in the MQTT URL or the broker's users.
AUTH_CODES = frozenset({BAD_USER_NAME_OR_PASSWORD, NOT_AUTHORIZED, BAD_AUTHENTICATION_METHOD, 4, 5})


class Connack(enum.Enum):
    ACCEPTED = "accepted"
    RETRY = "retry"
    FATAL = "fatal"


def reason_value(reason: Any) -> int:
    """The numeric value of a paho reason code (a ``ReasonCode`` or a plain int)."""
    if reason is None:
        return 0
    return int(reason.value) if hasattr(reason, "value") else int(reason)


def classify_connack(reason: Any) -> Connack:
    """Accepted, worth retrying (busy, unavailable, unspecified), or fatal (see :data:`FATAL_CONNACK`)."""
    code = reason_value(reason)
    if code == 0:
        return Connack.ACCEPTED
    return Connack.FATAL if code in FATAL_CONNACK else Connack.RETRY


def _reason_name(code: int) -> str:
    try:
        return str(ReasonCode(PacketTypes.CONNACK, identifier=code))
    except Exception:  # a v3.1.1 return code or one paho does not know
        return "refused"


def refusal_message(who: str, reason: Any) -> str:
    """Why the broker refused ``who`` and what to check; for fatal CONNACK codes."""
    code = reason_value(reason)
    hint = (
        "check the user name and password in the MQTT URL and the broker's users and ACL"
        if code in AUTH_CODES
        else "reconnecting cannot help; check the broker's configuration for this client"
    )
    return f"broker refused {who} (CONNACK reason {code:#x}, {_reason_name(code)}): {hint}"


@dataclass(frozen=True, slots=True)
class ReconnectBackoff:
    """Seconds to wait before reconnect attempt ``attempt`` (0 first): exponential, jittered, capped.

    tenacity's ``wait_random_exponential`` ("full jitter"): uniform between
    ``min_s / 2`` and ``min(max_s, min_s * 2**attempt)``, so clients that lost
    the broker together spread out, at the cap too.
    """

    min_s: float = 0.5
    max_s: float = 30.0

    @property
    def wait(self) -> wait_base:
        return wait_random_exponential(multiplier=self.min_s, min=self.min_s / 2, max=self.max_s)

    def delay(self, attempt: int) -> float:
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = min(attempt, 60) + 1
        return float(self.wait(state))


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
    reconnect_on_failure: bool = True,
) -> mqtt.Client:
    """A paho MQTT v5 client with credentials and TLS set, not yet connected.

    ``reconnect_on_failure=False``: paho's network thread (``loop_start``) ends
    when the connection is lost, so the caller reconnects with
    :class:`ReconnectBackoff` instead of paho's own fixed doubling.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
        reconnect_on_failure=reconnect_on_failure,
    )
    if endpoint.username is not None:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set(ca_certs=endpoint.ca_file, tls_version=ssl.PROTOCOL_TLS_CLIENT)
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
