"""Publishes buffered events in batches over MQTT v5 (QoS 1) and deletes them on commit acks.

One thread owns the paho client and drives its network loop itself (``client.loop``),
so connecting, backoff, acks and re-sends are in one place and need no locks
beyond the buffer's.

Delivery rules:
* a PUBACK only means the broker has the batch: it stays in flight;
* events leave the buffer only when a ``CommitAck`` on our ack topic names
  their seqs (stored, duplicate or dead-lettered at the collector);
* a batch unacknowledged after ``ack_timeout_s`` is re-sent from the buffer,
  same bytes, same event ids, so the collector's idempotent write absorbs it;
* after every (re)connect, what is in the buffer is the backlog: it is replayed
  oldest first at ``replay_max_events_per_s`` while new events go out at once.

Failures follow the policy shared with the collector (:mod:`takt.mqtt`): a
CONNACK that retrying cannot fix (bad credentials, not authorised, banned)
and an ACL refusing our topics stop the publisher with
:class:`BrokerAuthError`; anything else is retried after a jittered
exponential wait (:class:`~takt.mqtt.ReconnectBackoff`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from edge_agent import EdgeError
from edge_agent.buffer import EventBuffer
from takt.contract import (
    MAX_PAYLOAD_BYTES,
    GatewayState,
    GatewayStatus,
    ack_topic,
    decode_ack,
    encode_events_envelope,
    encode_status,
    events_topic,
    status_topic,
)
from takt.mqtt import (
    AUTH_CODES,
    Connack,
    MqttEndpoint,
    ReconnectBackoff,
    classify_connack,
    make_client,
    reason_value,
    refusal_message,
)

logger = logging.getLogger(__name__)

_PAYLOAD_BUDGET = MAX_PAYLOAD_BYTES - 4096


class BrokerAuthError(EdgeError):
    """The broker refused us (credentials, ACL, ban); retrying would not help."""


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    batch_max_events: int = 500
    ack_timeout_s: float = 30.0
    max_inflight_batches: int = 10
    replay_max_events_per_s: float = 5000.0
    heartbeat_s: float = 30.0
    connect_timeout_s: float = 10.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    keepalive_s: int = 30


@dataclass(slots=True)
class _Batch:
    seqs: set[int]
    first: int
    last: int
    sent_at: float
    mid: int
    pubacked: bool = False
    backlog: bool = False


@dataclass(slots=True)
class PublisherCounters:
    batches_sent: int = 0
    batches_resent: int = 0
    events_sent: int = 0
    events_acked: int = 0
    events_rejected: int = 0
    connects: int = 0
    acks: int = 0
    rejected_reasons: list[str] = field(default_factory=list)


class Publisher:
    def __init__(
        self,
        buffer: EventBuffer,
        endpoint: MqttEndpoint,
        site_id: str,
        gateway_id: str,
        settings: PublisherSettings = PublisherSettings(),
        *,
        status_fields: Callable[[], dict[str, Any]] = dict,
        client_id: str | None = None,
    ) -> None:
        self.buffer = buffer
        self.endpoint = endpoint
        self.site_id = site_id
        self.gateway_id = gateway_id
        self.settings = settings
        self.status_fields = status_fields
        self.events_topic = events_topic(site_id, gateway_id)
        self.status_topic = status_topic(site_id, gateway_id)
        self.ack_topic = ack_topic(site_id, gateway_id)
        self.client_id = client_id or f"takt-edge-{site_id}-{gateway_id}"
        self.counters = PublisherCounters()
        self.fatal: BaseException | None = None
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = ReconnectBackoff(settings.reconnect_min_s, settings.reconnect_max_s)
        self._client: mqtt.Client | None = None
        self._connack: int | None = None
        self._pending_acks: list[bytes] = []
        self._denied: str | None = None
        self._inflight: dict[int, _Batch] = {}
        self._live_cursor = 0
        self._backlog_cursor = 0
        self._replay_upto = 0
        self._tokens = 0.0
        self._last_refill = time.monotonic()
        self._last_heartbeat = 0.0
        self._status_asked = threading.Event()

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="takt-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.error("publisher thread did not stop within %.1f s", timeout_s)

    def status_now(self) -> None:
        """Publish the status at the next step rather than at the next heartbeat (any thread)."""
        self._status_asked.set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self.connected.wait(timeout_s)

    @property
    def replaying(self) -> bool:
        return self._backlog_cursor < self._replay_upto

    def status(self, state: GatewayState = GatewayState.ONLINE) -> GatewayStatus:
        stats = self.buffer.stats()
        fields: dict[str, Any] = {
            "backlog": stats.backlog,
            "oldest_buffered_age_s": stats.oldest_age_s,
            "dropped": stats.dropped,
            "replaying": self.replaying,
        }
        fields.update(self.status_fields())
        return GatewayStatus(
            gateway_id=self.gateway_id,
            site_id=self.site_id,
            state=state,
            timestamp=datetime.now(UTC),
            **fields,
        )

    # -- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        attempt = 0
        last_limits = time.monotonic()
        try:
            while not self._stop.is_set():
                if time.monotonic() - last_limits >= self.settings.heartbeat_s:
                    # Also while offline: that is when the buffer fills up.
                    self.buffer.enforce_limits()
                    last_limits = time.monotonic()
                if not self.connected.is_set():
                    if self._connect_once():
                        attempt = 0
                    else:
                        delay = self._backoff.delay(attempt)
                        attempt += 1
                        logger.info("MQTT not connected; next attempt in %.1f s", delay)
                        self._stop.wait(delay)
                    continue
                self._step()
        except BrokerAuthError as exc:
            self.fatal = exc
            logger.error("%s", exc)
        except Exception as exc:
            self.fatal = exc
            logger.exception("publisher stopped on an unexpected error")
        finally:
            self._shutdown()

    def _new_client(self) -> mqtt.Client:
        client = make_client(self.endpoint, self.client_id)
        will = GatewayStatus(gateway_id=self.gateway_id, site_id=self.site_id, state=GatewayState.OFFLINE)
        client.will_set(self.status_topic, encode_status(will), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        # We limit in-flight batches ourselves; paho's queue must never drop or block.
        client.max_inflight_messages_set(max(20, self.settings.max_inflight_batches + 5))
        return client

    def _connect_once(self) -> bool:
        if self._client is not None:
            self._close_socket()
        client = self._new_client()
        self._client = client
        self._connack = None
        try:
            client.connect(
                self.endpoint.host, self.endpoint.port, keepalive=self.settings.keepalive_s, clean_start=True
            )
        except (OSError, mqtt.WebsocketConnectionError) as exc:
            logger.warning("cannot reach broker %s:%d: %s", self.endpoint.host, self.endpoint.port, exc)
            return False
        deadline = time.monotonic() + self.settings.connect_timeout_s
        while self._connack is None and time.monotonic() < deadline and not self._stop.is_set():
            if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS and self._connack is None:
                break
        code = self._connack
        if code is None:
            logger.warning("no CONNACK from the broker within %.1f s", self.settings.connect_timeout_s)
            return False
        verdict = classify_connack(code)
        if verdict is Connack.FATAL:
            raise BrokerAuthError(refusal_message(f"gateway {self.gateway_id!r}", code))
        if verdict is Connack.RETRY:
            logger.warning("broker refused the connection (CONNACK reason %#x); retrying", code)
            return False
        self._after_connect(client)
        return True

    def _after_connect(self, client: mqtt.Client) -> None:
        self.counters.connects += 1
        # Clean session: subscribe again on every connect; acks missed while away
        # are made up for by re-sending (everything unacknowledged is backlog now).
        client.subscribe(self.ack_topic, qos=1)
        self._inflight.clear()
        self._pending_acks.clear()
        self._replay_upto = self.buffer.max_seq()
        self._backlog_cursor = 0
        self._live_cursor = self._replay_upto
        self._tokens = float(self.settings.batch_max_events)
        self._last_refill = time.monotonic()
        self._publish_status(GatewayState.ONLINE)
        self.connected.set()
        logger.info(
            "connected to %s:%d; backlog up to seq %d",
            self.endpoint.host,
            self.endpoint.port,
            self._replay_upto,
        )

    def _publish_status(self, state: GatewayState) -> None:
        assert self._client is not None
        self._client.publish(self.status_topic, encode_status(self.status(state)), qos=1, retain=True)
        self._last_heartbeat = time.monotonic()

    def _close_socket(self) -> None:
        if self._client is not None:
            try:
                self._client.disconnect()
                self._client.loop(timeout=0.01)
            except Exception:  # the socket is going away either way
                logger.debug("error closing MQTT socket", exc_info=True)
        self._client = None

    def _shutdown(self) -> None:
        if self._client is not None and self.connected.is_set():
            try:
                info = self._client.publish(
                    self.status_topic, encode_status(self.status(GatewayState.OFFLINE)), qos=1, retain=True
                )
                deadline = time.monotonic() + 2.0
                while not info.is_published() and time.monotonic() < deadline:
                    self._client.loop(timeout=0.05)
            except Exception:
                logger.debug("could not publish offline status", exc_info=True)
        self.connected.clear()
        self._close_socket()

    # -- paho callbacks (run inside client.loop, on this thread) ---------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connack = reason_value(reason)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self.connected.is_set():
            logger.warning("disconnected from broker: %s", reason)
        self.connected.clear()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if any(reason_value(r) in AUTH_CODES for r in reasons):
            self._denied = f"broker refused to let gateway {self.gateway_id!r} subscribe to {self.ack_topic}"

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.ack_topic:
            self._pending_acks.append(bytes(message.payload))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        if reason_value(reason) in AUTH_CODES:
            # Re-sending would be refused forever: the ACL does not match this gateway's topics.
            self._denied = f"broker refused to let gateway {self.gateway_id!r} publish on {self.events_topic}"
        for batch in self._inflight.values():
            if batch.mid == mid:
                batch.pubacked = True
                break

    # -- one iteration -----------------------------------------------------------------------
    def _step(self) -> None:
        assert self._client is not None
        busy = self._live_cursor < self.buffer.max_seq() or self.replaying
        rc = self._client.loop(timeout=0.002 if busy else 0.02)
        if self._denied is not None:
            raise BrokerAuthError(f"{self._denied}: check the site and gateway ids against the broker's ACL")
        if rc != mqtt.MQTT_ERR_SUCCESS:
            self.connected.clear()
            return
        self._apply_acks()
        now = time.monotonic()
        self._resend_overdue(now)
        self._send_live(now)
        self._send_backlog(now)
        if self._status_asked.is_set() or now - self._last_heartbeat >= self.settings.heartbeat_s:
            self._status_asked.clear()
            self._publish_status(GatewayState.ONLINE)

    def _apply_acks(self) -> None:
        if not self._pending_acks:
            return
        payloads, self._pending_acks = self._pending_acks, []
        ranges: list[tuple[int, int]] = []
        for payload in payloads:
            try:
                ack = decode_ack(payload)
            except ValidationError as exc:
                logger.warning("ignoring malformed commit ack: %s", exc)
                continue
            if ack.gateway_id != self.gateway_id:
                logger.warning("ignoring commit ack for gateway %r", ack.gateway_id)
                continue
            self.counters.acks += 1
            ranges.extend(ack.seq_ranges)
            for item in ack.rejected:
                self.counters.events_rejected += 1
                reason = f"seq {item.seq} / {item.event_id}: {item.reason}"
                self.counters.rejected_reasons.append(reason)
                del self.counters.rejected_reasons[:-100]
                logger.warning("collector rejected an event (dead-lettered): %s", reason)
                if item.seq is not None:
                    ranges.append((item.seq, item.seq))
        if not ranges:
            return
        self.counters.events_acked += self.buffer.delete_ranges(ranges)
        for key in list(self._inflight):
            batch = self._inflight[key]
            for first, last in ranges:
                if first <= batch.last and last >= batch.first:
                    batch.seqs = {s for s in batch.seqs if not first <= s <= last}
            if not batch.seqs:
                del self._inflight[key]

    def _publish_rows(self, rows: list[tuple[int, bytes]], *, backlog: bool, key: int | None = None) -> int:
        assert self._client is not None
        payloads: list[bytes] = []
        size = 0
        for _seq, payload in rows:
            if payloads and size + len(payload) + 1 > _PAYLOAD_BUDGET:
                break
            payloads.append(payload)
            size += len(payload) + 1
        rows = rows[: len(payloads)]
        body = encode_events_envelope(self.gateway_id, payloads)
        info = self._client.publish(self.events_topic, body, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.connected.clear()
            return 0
        seqs = {s for s, _ in rows}
        self._inflight[key if key is not None else rows[0][0]] = _Batch(
            seqs, rows[0][0], rows[-1][0], time.monotonic(), info.mid, backlog=backlog
        )
        self.counters.batches_sent += 1
        self.counters.events_sent += len(rows)
        return len(rows)

    def _resend_overdue(self, now: float) -> None:
        for key, batch in list(self._inflight.items()):
            if now - batch.sent_at < self.settings.ack_timeout_s:
                continue
            rows = [r for r in self.buffer.read_range(batch.first, batch.last) if r[0] in batch.seqs]
            del self._inflight[key]
            if rows:
                logger.info(
                    "no commit ack for seqs %d..%d after %.0f s; re-sending %d events",
                    batch.first,
                    batch.last,
                    self.settings.ack_timeout_s,
                    len(rows),
                )
                self.counters.batches_resent += 1
                self._publish_rows(rows, backlog=batch.backlog, key=key)

    def _send_live(self, now: float) -> None:
        while len(self._inflight) < self.settings.max_inflight_batches and self.connected.is_set():
            rows = self.buffer.read_after(self._live_cursor, self.settings.batch_max_events)
            if not rows:
                return
            sent = self._publish_rows(rows, backlog=False)
            if not sent:
                return
            self._live_cursor = rows[sent - 1][0]

    def _send_backlog(self, now: float) -> None:
        rate = self.settings.replay_max_events_per_s
        self._tokens = min(
            self._tokens + (now - self._last_refill) * rate, max(rate, float(self.settings.batch_max_events))
        )
        self._last_refill = now
        while (
            self.replaying
            and len(self._inflight) < self.settings.max_inflight_batches
            and self._tokens >= 1
            and self.connected.is_set()
        ):
            limit = min(self.settings.batch_max_events, int(self._tokens))
            rows = self.buffer.read_after(self._backlog_cursor, limit, upto_seq=self._replay_upto)
            if not rows:
                self._backlog_cursor = self._replay_upto
                logger.info("backlog replayed")
                return
            sent = self._publish_rows(rows, backlog=True)
            if not sent:
                return
            self._tokens -= sent
            self._backlog_cursor = rows[sent - 1][0]
