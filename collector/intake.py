"""The collector's MQTT side: connection, subscriptions, the inbound queue, acknowledgements out.

paho's network thread (``loop_start``) runs while a connection is up; it does
not reconnect by itself (``reconnect_on_failure=False``). A supervising thread
connects, waits for the connection to be lost, and reconnects with the policy
shared with the gateways (:mod:`takt.mqtt`): a refused CONNACK that retrying
cannot fix (bad credentials, not authorised, banned) stops the collector with
a clear message; anything else is retried after a jittered exponential wait.
``on_message`` runs on paho's thread, which must stay free for keep-alives,
so it only enqueues; acks and CommitAcks published from the writer thread go
out through paho's thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from collector.metrics import CollectorMetrics
from collector.pipeline import Message, Plan
from collector.settings import CollectorSettings
from takt.contract import ack_topic, encode_ack, shared_subscription
from takt.contract.topics import TOPIC_ROOT
from takt.mqtt import (
    Connack,
    MqttEndpoint,
    ReconnectBackoff,
    classify_connack,
    connect_properties,
    make_client,
    refusal_message,
)
from takt.store.events import WriteResult

logger = logging.getLogger(__name__)

Committed = list[tuple[Plan, WriteResult]]


class MqttIntake:
    """Receives the events and status topics into :attr:`queue`; acknowledges committed plans."""

    def __init__(
        self,
        settings: CollectorSettings,
        metrics: CollectorMetrics,
        stop: threading.Event,
        on_fatal: Callable[[str], None],
        backoff: ReconnectBackoff | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.endpoint = MqttEndpoint.from_url(settings.mqtt_url)
        # Larger than Receive Maximum, so on_message never blocks paho's thread.
        self.queue: queue.Queue[Message] = queue.Queue(maxsize=2 * settings.collector_receive_maximum + 64)
        # Bumped on every (re)connect: a message id is only meaningful to the
        # connection it arrived on; older ones are left to the broker's redelivery.
        self.generation = 0
        self._stop = stop
        self._closing = threading.Event()
        self._lost = threading.Event()
        self._on_fatal = on_fatal
        self._backoff = backoff or ReconnectBackoff()
        self._attempt = 0
        self._client = make_client(
            self.endpoint, settings.collector_client_id, manual_ack=True, reconnect_on_failure=False
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._thread = threading.Thread(target=self._run, name="collector-mqtt-supervisor", daemon=True)

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (acks), disconnect, and end the network threads."""
        self._closing.set()
        self._client.disconnect()
        self._thread.join(timeout_s)
        self._client.loop_stop()

    # -- the supervising thread -----------------------------------------------------
    def _run(self) -> None:
        first = True
        while not self._closing.is_set():
            if self._stop.is_set():
                self._closing.wait(0.1)  # stopping: no new connection, wait for close()
                continue
            self._lost.clear()
            try:
                if first:
                    first = False
                    self._open()
                else:
                    self._client.reconnect()
            except (OSError, mqtt.WebsocketConnectionError) as exc:
                self._wait_before_retry(f"cannot reach the broker ({exc})")
                continue
            self._client.loop_start()
            while not self._lost.wait(0.2):
                if self._closing.is_set():
                    return  # close() disconnects and stops paho's thread
            self._client.loop_stop()
            if not self._closing.is_set() and not self._stop.is_set():
                self._wait_before_retry("connection to the broker lost")

    def _open(self) -> None:
        # A persistent session: a restarted collector resumes it, including
        # messages queued for it while it was gone.
        expiry = self.settings.collector_session_expiry_s
        self._client.connect(
            self.endpoint.host,
            self.endpoint.port,
            keepalive=30,
            clean_start=expiry <= 0,
            properties=connect_properties(expiry, self.settings.collector_receive_maximum),
        )

    def _wait_before_retry(self, why: str) -> None:
        delay = self._backoff.delay(self._attempt)
        self._attempt += 1
        logger.warning("%s; reconnecting in %.1f s", why, delay)
        self._stop.wait(delay)

    # -- paho callbacks (paho's network thread) --------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        verdict = classify_connack(reason_code)
        if verdict is Connack.FATAL:
            who = f"the collector {self.settings.collector_client_id!r}"
            self._on_fatal(refusal_message(who, reason_code))
            return
        if verdict is Connack.RETRY:
            logger.warning("broker refused the connection (%s); retrying", reason_code)
            return
        self._attempt = 0
        self.generation += 1
        self.metrics.mqtt_connected.set(1)
        sites = self.settings.collector_sites
        events = shared_subscription(self.settings.collector_share_group, f"{TOPIC_ROOT}/{sites}/+/events")
        # Status is retained and every collector keeps the registry fresh:
        # an ordinary subscription, not a shared one.
        status = f"{TOPIC_ROOT}/{sites}/+/status"
        # Subscribing again on a resumed session is harmless and covers a
        # session the broker expired meanwhile.
        client.subscribe([(events, SubscribeOptions(qos=1)), (status, SubscribeOptions(qos=1))])
        logger.info(
            "connected to the broker (session present: %s); subscribed to %s and %s",
            flags.session_present,
            events,
            status,
        )

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            self._on_fatal(f"broker refused the collector's subscriptions: {', '.join(failed)}")
        else:
            logger.info("subscriptions granted")

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self.metrics.mqtt_connected.set(0)
        self._lost.set()
        if not self._stop.is_set():
            logger.warning("disconnected from the broker (%s)", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.queue.put(Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self.generation))
        self.metrics.queue_depth.set(self.queue.qsize())

    # -- after a commit (the writer thread) ----------------------------------------
    def acknowledge(self, committed: Committed, now: datetime) -> None:
        """Publish each gateway's CommitAck, then PUBACK the messages of this connection."""
        generation = self.generation
        for plan, result in committed:
            for site_id, gateway_id, ack in plan.acks(now, result.conflicts):
                self._client.publish(ack_topic(site_id, gateway_id), encode_ack(ack), qos=1)
            for message in plan.messages:
                if message.qos > 0 and message.generation == generation:
                    self._client.ack(message.mid, message.qos)
