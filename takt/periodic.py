"""Background database chores (rollup refresh, drift checks) on a timer."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
from prometheus_client import Counter

logger = logging.getLogger(__name__)


def is_poison(error: BaseException) -> bool:
    """Whether an error comes from the data a round works on, not from the database being away.

    Python errors (an overflow, a bug a value triggers) and PostgreSQL's data
    exceptions (class 22: out-of-range values and the like) are; connection
    losses, conflicts and timeouts are not: the next round may succeed.
    """
    return isinstance(error, psycopg.DataError) or not isinstance(error, psycopg.Error)


class PeriodicDatabaseTask:
    """Calls :meth:`run_round` every ``interval_s`` seconds in a daemon thread.

    Each task keeps one autocommit connection (UTC session). No exception ends
    the thread: every failed round is logged and counted (``failures``, and
    the Prometheus counter ``failure_counter`` labelled with the task's name),
    the connection is re-opened next round, and when the error comes from the
    data (:func:`is_poison`) :meth:`quarantine` moves the offending work item
    aside, so it cannot fail every later round too. An outage pauses the
    task, it does not end it. ``max_share`` caps the share of wall time spent
    in rounds: after a round of ``d`` seconds the next one waits at least
    ``d * (1 / max_share - 1)``, so a task whose rounds grow with load (a
    refresher during a burst) slows down instead of starving that load.
    """

    def __init__(
        self,
        name: str,
        database_url: str,
        interval_s: float,
        *,
        max_share: float = 1.0,
        failure_counter: Counter | None = None,
        quarantine_counter: Counter | None = None,
    ) -> None:
        if not 0 < max_share <= 1:
            raise ValueError("max_share must be in (0, 1]")
        self.name = name
        self._url = database_url
        self._interval_s = interval_s
        self._max_share = max_share
        self._failure_counter = failure_counter
        self._quarantine_counter = quarantine_counter
        self.last_round_s = 0.0
        self.rounds = 0
        self.failures = 0
        self.quarantined = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def run_round(self, conn: psycopg.Connection[Any]) -> None:
        raise NotImplementedError

    def quarantine(self, conn: psycopg.Connection[Any], error: BaseException) -> int:
        """Move aside the work item(s) that made a round fail with ``error``; returns how many.

        The default has no work items to move: the failure is logged and counted only.
        """
        return 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def next_wait_s(self) -> float:
        return max(self._interval_s, self.last_round_s * (1 / self._max_share - 1))

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._url, autocommit=True, options="-c TimeZone=UTC")

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.wait(self.next_wait_s()):
            started = time.monotonic()
            try:
                if conn is None or conn.closed:
                    conn = self._connect()
                self.run_round(conn)
                self.rounds += 1
            except Exception as exc:
                conn = self._failed(conn, exc)
            self.last_round_s = time.monotonic() - started
        if conn is not None:
            conn.close()

    def _failed(
        self, conn: psycopg.Connection[Any] | None, error: Exception
    ) -> psycopg.Connection[Any] | None:
        """Log and count a failed round, quarantine its work if the data caused it; the next connection."""
        self.failures += 1
        if self._failure_counter is not None:
            self._failure_counter.labels(self.name).inc()
        poison = is_poison(error)
        if poison:
            logger.exception("%s round failed on its data; quarantining the offending work", self.name)
        else:
            logger.exception("%s round failed; trying again next round", self.name)
        if conn is not None:
            conn.close()
        if not poison:
            return None
        try:
            conn = self._connect()
            moved = self.quarantine(conn, error)
        except Exception:
            logger.exception("%s: quarantining failed; trying again next round", self.name)
            if conn is not None:
                conn.close()
            return None
        if moved:
            self.count_quarantined(moved)
            logger.error("%s: quarantined %d work item(s) after: %s", self.name, moved, error)
        return conn

    def count_quarantined(self, n: int) -> None:
        """Count work items moved to a quarantine (by :meth:`quarantine` or by a round itself)."""
        self.quarantined += n
        if self._quarantine_counter is not None:
            self._quarantine_counter.labels(self.name).inc(n)
