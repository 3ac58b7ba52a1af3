"""A test driver that behaves like an edge gateway on the wire.

It publishes numbered event batches with the gateway's own broker
credentials, keeps every event until a CommitAck covers it, and re-sends
whatever stays unacknowledged, exactly as the edge agent's disk buffer does.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt

from takt.contract import (
    CommitAck,
    Event,
    EventType,
    ack_topic,
    decode_ack,
    encode_event,
    encode_events_envelope,
    events_topic,
)
from takt.mqtt import MqttEndpoint, connect, make_client


class GatewaySim:
    def __init__(
        self,
        url: str,
        site_id: str,
        gateway_id: str,
        *,
        batch_size: int = 100,
        resend_after_s: float = 3.0,
    ) -> None:
        self.site_id = site_id
        self.gateway_id = gateway_id
        self.batch_size = batch_size
        self.resend_after_s = resend_after_s
        self.topic = events_topic(site_id, gateway_id)
        self.next_seq = 1
        self.sent_ids: set[uuid.UUID] = set()
        self.acked_seqs: set[int] = set()
        self.rejected: dict[int, str] = {}
        self.acks: list[CommitAck] = []
        self.acks_received = 0
        self._pending: dict[int, tuple[bytes, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        endpoint = MqttEndpoint.from_url(url)
        self.client = make_client(endpoint, f"{gateway_id}-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        connect(self.client, endpoint)
        self.client.loop_start()
        if not self._subscribed.wait(15):
            raise RuntimeError(f"gateway {gateway_id} could not subscribe to its ack topic")
        self._resender = threading.Thread(target=self._resend_loop, daemon=True)
        self._resender.start()

    # -- paho callbacks ------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            client.subscribe(ack_topic(self.site_id, self.gateway_id), qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        if not any(rc.is_failure for rc in rcs):
            self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        ack = decode_ack(msg.payload)
        with self._lock:
            self.acks_received += 1
            self.acks.append(ack)
            for seq in ack.seqs():
                self._pending.pop(seq, None)
                self.acked_seqs.add(seq)
            for item in ack.rejected:
                if item.seq is not None:
                    self.rejected[item.seq] = item.reason

    # -- events --------------------------------------------------------------------
    def make_events(self, n: int, **overrides: Any) -> list[Event]:
        now = datetime.now(UTC)
        events = []
        for _ in range(n):
            fields: dict[str, Any] = {
                "event_id": uuid.uuid4(),
                "timestamp": now - timedelta(seconds=random.uniform(0, 60)),
                "worker_id": f"w{random.randint(1, 20)}",
                "station_id": f"s{random.randint(1, 8)}",
                "event_type": random.choice(list(EventType)),
                "confidence": round(random.uniform(0.5, 1.0), 3),
                "gateway_id": self.gateway_id,
                "seq": self.next_seq,
            }
            fields.update(overrides)
            if fields["event_type"] == EventType.PRODUCT_COUNT:
                fields.setdefault("count", 1)
            events.append(Event(**fields))
            self.next_seq += 1
        return events

    def send(self, events: list[Event]) -> None:
        """Publish in batches; every event stays pending until acknowledged."""
        encoded = [(e.seq, e.event_id, encode_event(e)) for e in events]
        now = time.monotonic()
        with self._lock:
            for seq, event_id, raw in encoded:
                assert seq is not None
                self._pending[seq] = (raw, now)
                self.sent_ids.add(event_id)
        for start in range(0, len(encoded), self.batch_size):
            chunk = [raw for _, _, raw in encoded[start : start + self.batch_size]]
            self.publish_raw(encode_events_envelope(self.gateway_id, chunk))

    def publish_raw(self, payload: bytes) -> None:
        self.client.publish(self.topic, payload, qos=1)

    def _resend_loop(self) -> None:
        while not self._stop.wait(0.25):
            now = time.monotonic()
            with self._lock:
                due = [(s, raw) for s, (raw, at) in self._pending.items() if now - at >= self.resend_after_s]
                for seq, raw in due:
                    self._pending[seq] = (raw, now)
            due.sort()
            for start in range(0, len(due), self.batch_size):
                chunk = [raw for _, raw in due[start : start + self.batch_size]]
                self.publish_raw(encode_events_envelope(self.gateway_id, chunk))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def wait_acked(self, timeout_s: float = 60) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pending == 0:
                return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        self._stop.set()
        self._resender.join(5)
        self.client.disconnect()
        self.client.loop_stop()
