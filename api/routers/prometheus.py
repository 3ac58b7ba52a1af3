"""``GET /metrics``: Prometheus exposition of model-quality gauges, read from the database per scrape.

Kept out of the process-global registry on purpose: every API process reports
the same database state, so the values come from one query at scrape time
rather than from counters that several processes would each hold a copy of.
The exception: this process's background tasks (rollup refresher, drift
checker) report their failed rounds and quarantined work items.
Scraping needs a viewer token (Prometheus ``authorization: credentials: ...``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.access import AllSites
from api.deps import Conn
from takt.periodic import PeriodicDatabaseTask

router = APIRouter(tags=["health"])


class _ModelQuality(Collector):
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def collect(self) -> Iterator[GaugeMetricFamily]:
        flag = GaugeMetricFamily(
            "takt_drift_flag",
            "Active drift flags: the flagged value (PSI or quantile shift) per subject and metric",
            labels=["site_id", "subject_kind", "subject_id", "metric"],
        )
        threshold = GaugeMetricFamily(
            "takt_drift_flag_threshold",
            "The threshold each active drift flag crossed",
            labels=["site_id", "subject_kind", "subject_id", "metric"],
        )
        rows = self._conn.execute(
            "SELECT DISTINCT ON (site_id, subject_kind, subject_id, metric) "
            "site_id, subject_kind, subject_id, metric, value, threshold FROM drift_flags WHERE active "
            "ORDER BY site_id, subject_kind, subject_id, metric, checked_at DESC"
        ).fetchall()
        for site, kind, subject, metric, value, limit in rows:
            flag.add_metric([site, kind, subject, metric], float(value))
            threshold.add_metric([site, kind, subject, metric], float(limit))
        yield flag
        yield threshold
        active = GaugeMetricFamily("takt_drift_flags_active", "Number of active drift flags")
        active.add_metric([], float(len(rows)))
        yield active
        running = GaugeMetricFamily(
            "takt_model_gateways",
            "Gateways whose status reports the model version now (production or shadow)",
            labels=["model_version", "shadow"],
        )
        for model, shadow, n in self._conn.execute(
            "SELECT v, s, count(*) FROM gateways g CROSS JOIN LATERAL (VALUES "
            "(g.status->>'model_version', 'false'), (g.status->>'shadow_model_version', 'true')) AS t(v, s) "
            "WHERE g.state = 'online' AND v IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall():
            running.add_metric([model, shadow], float(n))
        yield running


class _BackgroundTasks(Collector):
    def __init__(self, conn: psycopg.Connection[Any], tasks: list[PeriodicDatabaseTask]) -> None:
        self._conn = conn
        self._tasks = tasks

    def collect(self) -> Iterator[Metric]:
        failures = CounterMetricFamily(
            "takt_background_round_failures",
            "Rounds of this process's background tasks that failed; the task carries on",
            labels=["task"],
        )
        quarantined = CounterMetricFamily(
            "takt_background_quarantined",
            "Work items this process's background tasks moved to their quarantine",
            labels=["task"],
        )
        alive = GaugeMetricFamily(
            "takt_background_task_alive", "1 while the background task's thread runs", labels=["task"]
        )
        for task in self._tasks:
            failures.add_metric([task.name], float(task.failures))
            quarantined.add_metric([task.name], float(task.quarantined))
            alive.add_metric([task.name], 1.0 if task.alive else 0.0)
        yield failures
        yield quarantined
        yield alive
        row = self._conn.execute("SELECT count(*) FROM event_invalidations_quarantine").fetchone()
        held = GaugeMetricFamily(
            "takt_invalidations_quarantined", "Rollup invalidations held in event_invalidations_quarantine"
        )
        held.add_metric([], float(row[0]) if row else 0.0)
        yield held


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(request: Request, conn: Conn, _: AllSites) -> Response:
    """Prometheus exposition (every site's drift flags: site-scoped tokens get 403)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ModelQuality(conn))
    registry.register(_BackgroundTasks(conn, getattr(request.app.state, "background_tasks", [])))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
