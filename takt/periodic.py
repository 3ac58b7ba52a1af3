"""Background database chores (rollup refresh, drift checks) on a timer."""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

logger = logging.getLogger(__name__)


class PeriodicDatabaseTask:
    """Calls :meth:`run_round` every ``interval_s`` seconds in a daemon thread.

    Each task keeps one autocommit connection (UTC session). A database error
    is logged and the connection re-opened next round: an outage pauses the
    task, it does not end it.
    """

    def __init__(self, name: str, database_url: str, interval_s: float) -> None:
        self.name = name
        self._url = database_url
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def run_round(self, conn: psycopg.Connection[Any]) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.wait(self._interval_s):
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self._url, autocommit=True, options="-c TimeZone=UTC")
                self.run_round(conn)
            except psycopg.Error:
                logger.exception("%s round failed; trying again next round", self.name)
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
