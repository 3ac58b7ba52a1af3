"""The collector process: MQTT in, one writer thread, commit, then acknowledge.

The parts, one module each:

* :mod:`collector.intake` — the MQTT side: connection and reconnects (the
  policy shared with the gateways, :mod:`takt.mqtt`), subscriptions, the
  inbound queue, CommitAcks and PUBACKs out;
* :mod:`collector.batching` — the planner thread: batches from the queue,
  decoded in decoding processes or itself;
* :mod:`collector.database` — writing a plan in one transaction, retried
  while the database is away;
* :mod:`collector.isolation` — when a batch fails on its content, the
  message at fault is dead-lettered and the rest stored;
* :mod:`collector.audit` — the sequence audit's gauges;
* :class:`~collector.metrics.CollectorMetrics` — counting what was committed.

This module wires them: the writer thread takes the plans in arrival order,
commits each, and only after the commit acknowledges it to the broker
(``manual_ack``) and publishes a :class:`~takt.contract.CommitAck` per gateway.
A process that dies with messages queued has acknowledged none of them: the
broker redelivers them from the persistent session, and gateways re-send
whatever was never committed. The queue cannot overflow: MQTT v5 Receive
Maximum caps how many unacknowledged messages the broker sends, and the
queue is larger than that.
"""

from __future__ import annotations

import logging
import queue
import signal
import sys
import threading
from concurrent.futures import Future
from datetime import UTC, datetime
from types import FrameType

from collector.audit import SequenceAuditor
from collector.batching import Planner
from collector.database import PlanWriter
from collector.intake import MqttIntake
from collector.isolation import commit
from collector.metrics import CollectorMetrics, serve
from collector.pipeline import Limits
from collector.settings import CollectorSettings
from takt.store.rollups import RollupRefresher

logger = logging.getLogger(__name__)


class CollectorError(RuntimeError):
    """The collector cannot go on (refused by the broker, subscription denied)."""


class Collector:
    def __init__(self, settings: CollectorSettings, metrics: CollectorMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or CollectorMetrics()
        self._stop = threading.Event()
        self._fatal: str | None = None
        self._limits = Limits(settings.plausibility, settings.privacy_levels())
        self._intake = MqttIntake(settings, self.metrics, self._stop, self._fail)
        self._planner = Planner(settings, self.metrics, self._intake.queue, self._stop, self._fail)
        self._db = PlanWriter(settings, self.metrics, self._stop)
        self._auditor = SequenceAuditor(
            self.metrics, self._db.connection, interval_s=settings.collector_audit_interval_s
        )
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

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        # The writer waits on the database many times a batch; with CPython's
        # default 5 ms switch interval each wake-up can wait that long for the
        # GIL behind the decoding thread.
        sys.setswitchinterval(0.0005)
        self._intake.start()
        self._planner.start()
        self._writer.start()
        if self._refresher is not None:
            self._refresher.start()
        logger.info(
            "collector %s started: broker %s:%d, share group %s",
            self.settings.collector_client_id,
            self._intake.endpoint.host,
            self._intake.endpoint.port,
            self.settings.collector_share_group,
        )

    def stop(self) -> None:
        """Finish the batch in hand, then disconnect; queued messages stay with the broker."""
        self._stop.set()
        for thread in (self._planner.thread, self._writer):
            if thread.is_alive():
                thread.join(timeout=60)
        if self._refresher is not None:
            self._refresher.stop()
        self._intake.close()
        self._planner.close()
        self._db.close()
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

    # -- the writer thread -------------------------------------------------------
    def _run_writer(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    batch, pending = self._planner.plans.get(timeout=0.2)
                except queue.Empty:
                    self._auditor.maybe_run()  # keeps the audit gauges current while idle
                    continue
                plan = pending.result() if isinstance(pending, Future) else pending
                plan.messages = batch
                committed = commit(self._db, plan, self._limits)
                if committed is None:
                    return  # stopping before the database came back: nothing acked
                now = datetime.now(UTC)
                self._intake.acknowledge(committed, now)
                for done, result in committed:
                    self.metrics.count_committed(done, result, now)
                self._auditor.maybe_run()
        except Exception:
            # A bug, not bad input (that is dead-lettered): stop loudly rather
            # than spin; nothing uncommitted was acknowledged.
            logger.exception("collector writer failed")
            self._fail("collector writer failed; see the log")


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
