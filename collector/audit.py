"""The sequence audit's gauges: open gaps and reused sequence numbers, per gateway."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg

from collector.metrics import CollectorMetrics
from takt.store.audit import open_gaps, seq_reuse

logger = logging.getLogger(__name__)


class SequenceAuditor:
    """Runs the audit at most every ``interval_s``; gauges of gateways whose gaps closed go back to 0."""

    def __init__(
        self,
        metrics: CollectorMetrics,
        connection: Callable[[], psycopg.Connection[Any]],
        interval_s: float,
    ) -> None:
        self.metrics = metrics
        self._connection = connection
        self._interval_s = interval_s
        self._last = 0.0
        self._with_gaps: set[str] = set()

    def maybe_run(self) -> None:
        if time.monotonic() - self._last < self._interval_s:
            return
        self._last = time.monotonic()
        try:
            conn = self._connection()
            gaps = open_gaps(conn)
            reuse = seq_reuse(conn)
        except psycopg.Error as exc:
            logger.debug("sequence audit skipped: %s", exc)
            return
        m = self.metrics
        for gateway_id, ranges in gaps.items():
            m.open_gap_ranges.labels(gateway_id).set(len(ranges))
            m.open_gap_events.labels(gateway_id).set(sum(b - a + 1 for a, b in ranges))
        for gateway_id, (reused, _last) in reuse.items():
            m.seq_reused.labels(gateway_id).set(reused)
        # Gateways whose gaps closed since the last audit go back to zero.
        for gateway_id in self._with_gaps - gaps.keys():
            m.open_gap_ranges.labels(gateway_id).set(0)
            m.open_gap_events.labels(gateway_id).set(0)
        self._with_gaps = set(gaps)
