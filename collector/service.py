"""The collector process: MQTT in, one writer thread, commit, then acknowledge.

paho runs ``on_message`` on its network thread, which must stay free for
keep-alives, so it only enqueues. The planner thread drains up to
``collector_batch_max_messages`` messages (or what arrives within
``collector_batch_max_wait_ms``) and has them decoded (in a decoding process
or itself); the writer thread takes the plans in arrival order, writes each
in one transaction and only after the commit acknowledges them to the broker (``manual_ack``) and
publishes a :class:`~takt.contract.CommitAck` per gateway. A process that dies
with messages queued has acknowledged none of them: the broker redelivers them
from the persistent session, and gateways re-send whatever was never
committed. The queue cannot overflow: MQTT v5 Receive Maximum caps how many
unacknowledged messages the broker sends, and the queue is larger than that.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.subscribeoptions import SubscribeOptions
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_when_event_set
from tenacity.wait import wait_exponential_jitter

from collector.metrics import CollectorMetrics, serve
from collector.pipeline import (
    Message,
    Plan,
    dead_letter_plan,
    plan_batch,
    plan_for_copy,
    prepare_copy,
)
from collector.settings import CollectorSettings
from collector.writer import write_plan
from takt.contract import ack_topic, encode_ack, shared_subscription
from takt.contract.topics import TOPIC_ROOT
from takt.mqtt import MqttEndpoint, connect, make_client
from takt.store.audit import open_gaps
from takt.store.events import SeenSeqs, WriteMethod, WriteResult, seq_reuse
from takt.store.rollups import RollupRefresher

logger = logging.getLogger(__name__)

# CONNACK reason codes after which reconnecting cannot help.
_FATAL_CONNACK = frozenset({0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C})


class CollectorError(RuntimeError):
    """The collector cannot go on (refused by the broker, subscription denied)."""


Committed = list[tuple[Plan, WriteResult]]


class Collector:
    def __init__(self, settings: CollectorSettings, metrics: CollectorMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or CollectorMetrics()
        self._limits = settings.plausibility
        # Larger than Receive Maximum, so on_message never blocks paho's thread.
        self._queue: queue.Queue[Message] = queue.Queue(maxsize=2 * settings.collector_receive_maximum + 64)
        self._stop = threading.Event()
        self._fatal: str | None = None
        # Bumped on every (re)connect: a message id is only meaningful to the
        # connection it arrived on; older ones are left to the broker's redelivery.
        self._generation = 0
        self._db_down_since: float | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._last_audit = 0.0
        endpoint = MqttEndpoint.from_url(settings.mqtt_url)
        self._endpoint = endpoint
        self._client = make_client(endpoint, settings.collector_client_id, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        # Batches being planned or planned, in arrival order; small, to keep the unacked window short.
        self._plans: queue.Queue[tuple[list[Message], Plan | Future[Plan]]] = queue.Queue(
            maxsize=2 + settings.collector_decode_processes
        )
        # Decoding is most of the CPU and holds the GIL; in processes of its
        # own it no longer slows the MQTT and database threads. COPY only:
        # events come back as COPY text.
        self._pool: ProcessPoolExecutor | None = None
        if settings.collector_decode_processes and settings.collector_write_method is WriteMethod.COPY:
            self._pool = ProcessPoolExecutor(
                settings.collector_decode_processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_decoder,
                initargs=(os.getpid(),),
            )
        # Decoding in this process (no pool): what it has seen, for copy_batch.
        self._seen = SeenSeqs()
        self._planner = threading.Thread(target=self._run_planner, name="collector-planner", daemon=True)
        self._writer = threading.Thread(target=self._run_writer, name="collector-writer", daemon=True)
        # Keeps derived durations and rollups current; an API process may run
        # one too (they take turns on an advisory lock).
        self._refresher = (
            RollupRefresher(
                settings.database_url,
                max_gap_s=settings.max_state_gap_s,
                interval_s=settings.collector_refresh_interval_s,
                max_share=settings.refresh_max_share,
                failure_counter=self.metrics.background_failures,
                quarantine_counter=self.metrics.background_quarantined,
            )
            if settings.collector_refresh_interval_s > 0
            else None
        )
        self._retrying = Retrying(
            retry=retry_if_exception_type(psycopg.OperationalError),
            wait=wait_exponential_jitter(multiplier=0.2, jitter=0.5, max=settings.collector_db_retry_max_s),
            stop=stop_when_event_set(self._stop),
            sleep=self._sleep,
            before_sleep=self._on_db_retry,
            reraise=True,
        )

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        # The writer waits on the database many times a batch; with CPython's
        # default 5 ms switch interval each wake-up can wait that long for the
        # GIL behind the decoding thread.
        sys.setswitchinterval(0.0005)
        # A persistent session: a restarted collector resumes it, including
        # messages queued for it while it was gone.
        connect(
            self._client,
            self._endpoint,
            session_expiry_s=self.settings.collector_session_expiry_s,
            receive_maximum=self.settings.collector_receive_maximum,
        )
        self._client.loop_start()
        self._planner.start()
        self._writer.start()
        if self._refresher is not None:
            self._refresher.start()
        logger.info(
            "collector %s started: broker %s:%d, share group %s",
            self.settings.collector_client_id,
            self._endpoint.host,
            self._endpoint.port,
            self.settings.collector_share_group,
        )

    def stop(self) -> None:
        """Finish the batch in hand, then disconnect; queued messages stay with the broker."""
        self._stop.set()
        for thread in (self._planner, self._writer):
            if thread.is_alive():
                thread.join(timeout=60)
        if self._refresher is not None:
            self._refresher.stop()
        self._client.disconnect()
        self._client.loop_stop()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._conn is not None:
            self._conn.close()
        logger.info("collector %s stopped", self.settings.collector_client_id)

    def wait(self, timeout: float | None = None) -> None:
        """Block until stopped; raise :class:`CollectorError` if it stopped on a fatal error."""
        self._stop.wait(timeout)
        if self._fatal:
            raise CollectorError(self._fatal)

    def request_stop(self) -> None:
        """Ask the threads to stop (safe from a signal handler); :meth:`stop` then joins them."""
        self._stop.set()

    def _fail(self, reason: str) -> None:
        logger.error("%s", reason)
        self._fatal = reason
        self._stop.set()

    # -- MQTT callbacks (paho's network thread) ----------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            if reason_code.value in _FATAL_CONNACK:
                self._fail(f"broker refused the collector: {reason_code}")
                client.disconnect()
            else:
                logger.warning("broker refused the connection (%s); retrying", reason_code)
            return
        self._generation += 1
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
            self._fail(f"broker refused the collector's subscriptions: {', '.join(failed)}")
        else:
            logger.info("subscriptions granted")

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self.metrics.mqtt_connected.set(0)
        if not self._stop.is_set():
            logger.warning("disconnected from the broker (%s); paho reconnects", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self._generation))
        self.metrics.queue_depth.set(self._queue.qsize())

    # -- writer thread -----------------------------------------------------------
    def _run_planner(self) -> None:
        """Decode while the writer waits on the database: the two overlap (psycopg releases the GIL)."""
        try:
            while not self._stop.is_set():
                batch = self._drain()
                if not batch:
                    continue
                started = time.perf_counter()
                pending: Plan | Future[Plan]
                if self._pool is not None:
                    raw = [(m.topic, m.payload) for m in batch]
                    pending = self._pool.submit(plan_for_copy, raw, datetime.now(UTC), self._limits)
                else:
                    pending = plan_batch(batch, datetime.now(UTC), self._limits)
                    if self.settings.collector_write_method is WriteMethod.COPY:
                        prepare_copy(pending, self._seen)
                    self.metrics.plan_seconds.observe(time.perf_counter() - started)
                while not self._stop.is_set():
                    try:
                        self._plans.put((batch, pending), timeout=0.2)
                        break
                    except queue.Full:
                        continue
        except Exception:
            logger.exception("collector planner failed")
            self._fail("collector planner failed; see the log")

    def _run_writer(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    batch, pending = self._plans.get(timeout=0.2)
                except queue.Empty:
                    self._audit()  # keeps the audit gauges current while idle
                    continue
                plan = pending.result() if isinstance(pending, Future) else pending
                plan.messages = batch
                committed = self._commit(plan)
                if committed is None:
                    return  # stopping before the database came back: nothing acked
                self._acknowledge(committed)
                self._audit()
        except Exception:
            # A bug, not bad input (that is dead-lettered): stop loudly rather
            # than spin; nothing uncommitted was acknowledged.
            logger.exception("collector writer failed")
            self._fail("collector writer failed; see the log")

    def _drain(self) -> list[Message]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        limit = self.settings.collector_batch_max_messages
        deadline = time.monotonic() + self.settings.collector_batch_max_wait_ms / 1000
        while len(batch) < limit:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        self.metrics.queue_depth.set(self._queue.qsize())
        return batch

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.settings.database_url,
                autocommit=True,
                connect_timeout=5,
                application_name=self.settings.collector_client_id,
            )
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def _write_once(self, plan: Plan) -> WriteResult:
        conn = self._connection()
        started = time.perf_counter()
        try:
            with conn.transaction():
                result = write_plan(conn, plan, self.settings.collector_write_method)
        except psycopg.OperationalError:
            self._drop_connection()
            raise
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        if self._db_down_since is not None:
            logger.warning(
                "database available again after %.1f s; resuming acknowledgements",
                time.monotonic() - self._db_down_since,
            )
            self._db_down_since = None
            self.metrics.db_unavailable.set(0)
        return result

    def _on_db_retry(self, state: RetryCallState) -> None:
        self.metrics.db_retries.inc()
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        if isinstance(exc, psycopg.Error) and (exc.sqlstate or "").startswith("40"):
            # Class 40 (deadlock, serialization): two collectors storing re-sends of
            # the same events at once; the database aborted one; nothing is down.
            logger.info("transaction conflict with another writer (%s); retrying", str(exc).strip())
            return
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            self.metrics.db_unavailable.set(1)
            logger.error(
                "database unavailable (%s); not acknowledging anything, the broker and gateways keep "
                "the data; retrying",
                str(exc).strip(),
            )
        else:
            logger.warning("database still unavailable; next attempt in %.1f s", wait)

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _write(self, plan: Plan) -> WriteResult:
        result: WriteResult = self._retrying(self._write_once, plan)
        return result

    def _commit(self, plan: Plan) -> Committed | None:
        """Write the plan; ``None`` when stopped before it could be written."""
        try:
            return [(plan, self._write(plan))]
        except psycopg.OperationalError:
            return None
        except Exception as exc:
            # The database refused a value, or writing the plan failed on one
            # message's content: find that message, dead-letter it, keep the rest.
            logger.warning("writing a batch of %d messages failed (%s); isolating", len(plan.messages), exc)
        return self._commit_one_by_one(plan.messages)

    def _commit_one_by_one(self, messages: Sequence[Message]) -> Committed | None:
        committed: Committed = []
        for message in messages:
            plan = plan_batch([message], datetime.now(UTC), self._limits)
            try:
                committed.append((plan, self._write(plan)))
                continue
            except psycopg.OperationalError:
                return None
            except psycopg.Error as exc:
                reason = f"database refused: {str(exc).strip()[:500]}"
                logger.warning("dead-lettering a message on %s: %s", message.topic, reason)
            except Exception as exc:
                reason = f"write failed: {type(exc).__name__}: {str(exc).strip()[:500]}"
                logger.warning("dead-lettering a message on %s: %s", message.topic, reason)
            letters = dead_letter_plan([message], reason)
            try:
                committed.append((letters, self._write(letters)))
            except psycopg.OperationalError:
                return None
        return committed

    def _acknowledge(self, committed: Committed) -> None:
        now = datetime.now(UTC)
        generation = self._generation
        m = self.metrics
        for plan, result in committed:
            for site_id, gateway_id, ack in plan.acks(now, result.conflicts):
                self._client.publish(ack_topic(site_id, gateway_id), encode_ack(ack), qos=1)
            for message in plan.messages:
                if message.qos > 0 and message.generation == generation:
                    self._client.ack(message.mid, message.qos)
            m.batch_messages.observe(len(plan.messages))
            events = sum(1 for msg in plan.messages if msg.topic.endswith("/events"))
            m.messages_received.labels("events").inc(events)
            m.messages_received.labels("status").inc(len(plan.messages) - events)
            for gateway_id, count in plan.received_by_gateway.items():
                m.events_received.labels(gateway_id).inc(count)
            m.events_written.inc(result.inserted)
            m.duplicates.inc(result.duplicates + plan.duplicates_in_batch)
            for letter in plan.dead_letters:
                kind = "event" if letter.event_index is not None else "payload"
                m.dead_letters.labels(kind).inc()
            if result.conflicts:
                m.dead_letters.labels("event").inc(len(result.conflicts))
                m.conflicts.inc(len(result.conflicts))
            for newest in plan.newest.values():
                m.ingest_lag.observe(max(0.0, (now - newest).total_seconds()))

    def _audit(self) -> None:
        if time.monotonic() - self._last_audit < self.settings.collector_audit_interval_s:
            return
        self._last_audit = time.monotonic()
        try:
            gaps = open_gaps(self._connection())
            reuse = seq_reuse(self._connection())
        except psycopg.Error as exc:
            logger.debug("sequence audit skipped: %s", exc)
            return
        for gateway_id, ranges in gaps.items():
            self.metrics.open_gap_ranges.labels(gateway_id).set(len(ranges))
            self.metrics.open_gap_events.labels(gateway_id).set(sum(b - a + 1 for a, b in ranges))
        for gateway_id, (reused, _last) in reuse.items():
            self.metrics.seq_reused.labels(gateway_id).set(reused)
        # Gateways whose gaps closed since the last audit go back to zero.
        for labels in list(self.metrics.open_gap_ranges._metrics):
            if labels[0] not in gaps:
                self.metrics.open_gap_ranges.labels(*labels).set(0)
                self.metrics.open_gap_events.labels(*labels).set(0)


def _init_decoder(parent_pid: int) -> None:
    """Set up a decoding process: tied to its parent, lazy garbage collection.

    Decoding allocates tens of thousands of short-lived objects a batch; at
    the default thresholds the cyclic collector runs hundreds of times a batch
    and costs about a quarter of the decoding time. The decoded objects hold
    no reference cycles, so collecting rarely loses nothing.
    """
    gc.set_threshold(50_000, 20, 100)
    _exit_with_parent(parent_pid)


def _exit_with_parent(parent_pid: int) -> None:
    """Decoding processes must not outlive a collector killed with SIGKILL."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def run(settings: CollectorSettings) -> None:
    """Run until SIGTERM or SIGINT; raise :class:`CollectorError` on a fatal error."""
    metrics = CollectorMetrics()
    serve(metrics, settings.collector_metrics_port, settings.collector_metrics_host)
    collector = Collector(settings, metrics)

    def _stop(signum: int, frame: FrameType | None) -> None:
        logger.info("signal %d: stopping", signum)
        collector.request_stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    collector.start()
    try:
        collector.wait()
    finally:
        collector.stop()
