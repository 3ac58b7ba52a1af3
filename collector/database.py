"""The collector's database side: one connection, writes retried while the database is away.

:class:`PlanWriter` writes a plan in one transaction. Connection errors
(``psycopg.OperationalError``) are retried after a jittered exponential wait
(tenacity) until the database is back or the collector stops; meanwhile
nothing is acknowledged, so the broker and the gateways keep the data.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import psycopg
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_when_event_set
from tenacity.wait import wait_exponential_jitter

from collector.metrics import CollectorMetrics
from collector.pipeline import Plan
from collector.settings import CollectorSettings
from collector.writer import write_plan
from takt.store.events import WriteResult

logger = logging.getLogger(__name__)


class PlanWriter:
    def __init__(self, settings: CollectorSettings, metrics: CollectorMetrics, stop: threading.Event) -> None:
        self.settings = settings
        self.metrics = metrics
        self._stop = stop
        self._conn: psycopg.Connection[Any] | None = None
        self._down_since: float | None = None
        self._retrying = Retrying(
            retry=retry_if_exception_type(psycopg.OperationalError),
            wait=wait_exponential_jitter(multiplier=0.2, jitter=0.5, max=settings.collector_db_retry_max_s),
            stop=stop_when_event_set(stop),
            sleep=self._sleep,
            before_sleep=self._on_retry,
            reraise=True,
        )

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def connection(self) -> psycopg.Connection[Any]:
        """The writer's connection (opened on first use, and again after it was lost)."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.settings.database_url,
                autocommit=True,
                connect_timeout=5,
                application_name=self.settings.collector_client_id,
            )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def write(self, plan: Plan) -> WriteResult:
        """Write and commit ``plan``; raises ``OperationalError`` only when stopped before it could."""
        result: WriteResult = self._retrying(self._write_once, plan)
        return result

    def _write_once(self, plan: Plan) -> WriteResult:
        conn = self.connection()
        started = time.perf_counter()
        try:
            with conn.transaction():
                result = write_plan(conn, plan, self.settings.collector_write_method)
        except psycopg.OperationalError:
            self.close()
            raise
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        if self._down_since is not None:
            logger.warning(
                "database available again after %.1f s; resuming acknowledgements",
                time.monotonic() - self._down_since,
            )
            self._down_since = None
            self.metrics.db_unavailable.set(0)
        return result

    def _on_retry(self, state: RetryCallState) -> None:
        self.metrics.db_retries.inc()
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        if isinstance(exc, psycopg.Error) and (exc.sqlstate or "").startswith("40"):
            # Class 40 (deadlock, serialization): two collectors storing re-sends of
            # the same events at once; the database aborted one; nothing is down.
            logger.info("transaction conflict with another writer (%s); retrying", str(exc).strip())
            return
        if self._down_since is None:
            self._down_since = time.monotonic()
            self.metrics.db_unavailable.set(1)
            logger.error(
                "database unavailable (%s); not acknowledging anything, the broker and gateways keep "
                "the data; retrying",
                str(exc).strip(),
            )
        else:
            logger.warning("database still unavailable; next attempt in %.1f s", wait)
