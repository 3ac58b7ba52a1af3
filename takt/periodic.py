"""Background database chores (rollup refresh, drift checks) on a timer."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg

logger = logging.getLogger(__name__)


class PeriodicDatabaseTask:
    """Calls :meth:`run_round` every ``interval_s`` seconds in a daemon thread.

    Each task keeps one autocommit connection (UTC session). A database error
    is logged and the connection re-opened next round: an outage pauses the
    task, it does not end it. ``max_share`` caps the share of wall time spent
    in rounds: after a round of ``d`` seconds the next one waits at least
    ``d * (1 / max_share - 1)``, so a task whose rounds grow with load (a
    refresher during a burst) slows down instead of starving that load.
    """

    def __init__(self, name: str, database_url: str, interval_s: float, *, max_share: float = 1.0) -> None:
        if not 0 < max_share <= 1:
            raise ValueError("max_share must be in (0, 1]")
        self.name = name
        self._url = database_url
        self._interval_s = interval_s
        self._max_share = max_share
        self.last_round_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def run_round(self, conn: psycopg.Connection[Any]) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def next_wait_s(self) -> float:
        return max(self._interval_s, self.last_round_s * (1 / self._max_share - 1))

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.wait(self.next_wait_s()):
            started = time.monotonic()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self._url, autocommit=True, options="-c TimeZone=UTC")
                self.run_round(conn)
            except psycopg.Error:
                logger.exception("%s round failed; trying again next round", self.name)
                if conn is not None:
                    conn.close()
                conn = None
            self.last_round_s = time.monotonic() - started
        if conn is not None:
            conn.close()
