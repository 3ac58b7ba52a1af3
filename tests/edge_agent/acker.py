"""TEST HELPER standing in for the collector (built in parallel): subscribes to event
batches with the collector's credentials and publishes a ``CommitAck`` for each, on
the same topics and with the same messages as the real collector.

It records every event it receives (duplicates included) so tests can check
what arrived, and can be told to lose acks.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from takt.contract import (
    CommitAck,
    Event,
    decode_event_batch,
    encode_ack,
    parse_topic,
    seq_ranges,
)
from takt.contract.events import RejectedItem
from takt.mqtt import MqttEndpoint, make_client


def wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class StandInAcker:
    __test__ = False  # a helper, not a test class

    def __init__(
        self,
        collector_url: str,
        site_id: str,
        *,
        drop_ack: Callable[[int], bool] = lambda n: False,
    ) -> None:
        self.site_id = site_id
        self.drop_ack = drop_ack
        self.received: list[Event] = []
        self.batches = 0
        self.acks_sent = 0
        self.acks_dropped = 0
        self.paused = False
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        endpoint = MqttEndpoint.from_url(collector_url)
        self.client = make_client(endpoint, f"test-acker-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect(endpoint.host, endpoint.port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "acker did not subscribe"

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        client.subscribe(f"takt/v1/{self.site_id}/+/events", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        address = parse_topic(message.topic)
        batch = decode_event_batch(message.payload, site_id=address.site_id, gateway_id=address.gateway_id)
        with self._lock:
            self.batches += 1
            self.received.extend(batch.events)
            n = self.batches
        if self.paused:
            return
        if self.drop_ack(n):
            self.acks_dropped += 1
            return
        ack = CommitAck(
            gateway_id=address.gateway_id,
            seq_ranges=seq_ranges(e.seq for e in batch.events if e.seq is not None),
            rejected=[RejectedItem(seq=r.seq, reason=r.reason) for r in batch.rejected],
            committed_at=datetime.now(UTC),
        )
        client.publish(f"takt/v1/{address.site_id}/{address.gateway_id}/ack", encode_ack(ack), qos=1)
        self.acks_sent += 1

    def seqs(self) -> list[int]:
        with self._lock:
            return [e.seq for e in self.received if e.seq is not None]

    def events(self) -> list[Event]:
        with self._lock:
            return list(self.received)

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 30.0) -> bool:
        return wait_until(predicate, timeout_s)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
