"""The FastAPI application factory: ``create_app(settings)``; nothing connects at import time."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import uvicorn
from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from api.alerts.deliver import NotificationSender
from api.alerts.evaluate import AlertEvaluator
from api.deps import require
from api.errors import install_error_handlers
from api.middleware import Guard
from api.routers import (
    alerts,
    andon,
    events,
    gateways,
    health,
    losses,
    metrics,
    model_quality,
    privacy,
    prometheus,
    registry,
    reports,
    seed,
    shift_metrics,
    targets,
    views,
)
from api.security import Role
from api.settings import ApiSettings
from api.shift_report.schedule import ReportScheduler, ReportSender
from dashboard import DashboardDeps, mount_dashboard
from models.quality import DriftChecker, schedule_from
from takt.store.db import require_current_schema, require_metric_settings
from takt.store.rollups import RollupRefresher, apply_timescale_policies

logger = logging.getLogger(__name__)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        require_current_schema(settings.database_url)
        require_metric_settings(settings.database_url, max_gap_s=settings.max_state_gap_s)
        pool: ConnectionPool = ConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=settings.db_pool_size,
            # The Guard lets at most db_pool_size requests use the database at once, so a
            # wait here is a connection being (re)opened; past this, 503 with Retry-After.
            timeout=settings.db_pool_timeout_s,
            # JIT off: metric queries run in milliseconds, but planner estimates
            # over many windows (a time series' buckets) cross jit_above_cost
            # and compiling cost ~20 ms.
            kwargs={"autocommit": True, "options": "-c TimeZone=UTC -c jit=off"},
            open=True,
        )
        app.state.pool = pool
        with pool.connection() as conn:
            apply_timescale_policies(
                conn,
                compress_after=_days(settings.compress_after_days),
                retention=_days(settings.rollup_retention_days),
            )
        refresher = None
        if settings.refresh_interval_s > 0:
            refresher = RollupRefresher(
                settings.database_url,
                max_gap_s=settings.max_state_gap_s,
                interval_s=settings.refresh_interval_s,
                max_share=settings.refresh_max_share,
            )
            refresher.start()
        checker = None
        if settings.drift_check_interval_s > 0:
            checker = DriftChecker(
                settings.database_url, schedule_from(settings), interval_s=settings.drift_check_interval_s
            )
            checker.start()
        evaluator = sender = None
        if settings.alert_interval_s > 0:
            # docs/alerts.md: one evaluator per round across API processes (advisory lock).
            evaluator = AlertEvaluator(
                settings.database_url, settings.alert_interval_s, settings.calendars, settings.max_state_gap_s
            )
            sender = NotificationSender(settings.database_url, settings)
            evaluator.start()
            sender.start()
        app.state.alert_evaluator = evaluator
        reporter = report_sender = None
        if settings.report_interval_s > 0:
            # docs/metrics.md, "Shift report": made once per shift end across API processes.
            reporter = ReportScheduler(settings)
            report_sender = ReportSender(settings)
            reporter.start()
            report_sender.start()
        app.state.report_scheduler = reporter
        # Their failure counts are exported by GET /metrics (api.routers.prometheus).
        app.state.background_tasks = [
            task
            for task in (refresher, checker, evaluator, sender, reporter, report_sender)
            if task is not None
        ]
        # Everything built so far (routes, schemas, pool, settings) lives as long
        # as the process: move it out of the cyclic collector's reach, so a
        # full collection triggered by a large response scans only what
        # requests allocate (measured: p95 of a 3,000-point time series 115 ms
        # -> 38 ms, bench/api.py).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            # Let what the app held become collectable again (tests start many apps).
            gc.unfreeze()
            for task in (report_sender, reporter, sender, evaluator):
                if task is not None:
                    task.stop()
            if checker is not None:
                checker.stop()
            if refresher is not None:
                refresher.stop()
            pool.close()

    app = FastAPI(
        title="Takt metrics API",
        version="1.0.0",
        lifespan=lifespan,
        docs_url="/docs",
        description="Worker, workstation and factory productivity metrics; event ingestion.",
    )
    app.state.settings = settings
    install_error_handlers(app)

    # Request ids, security headers, rate limits, body limit, auth before the body, the database
    # gate and the response cache (api/middleware.py).
    app.add_middleware(Guard, settings=settings, state=app.state)

    app.include_router(health.router)
    app.include_router(prometheus.router)
    for prefix, visible in (("/api/v1", True), ("/api", False)):
        for module in (
            registry,
            events,
            metrics,
            seed,
            gateways,
            model_quality,
            targets,
            shift_metrics,
            losses,
            reports,
            alerts,
            andon,
            privacy,
        ):
            app.include_router(module.router, prefix=prefix, include_in_schema=visible)
    # The dashboard page's own views, at the paths it has always called (/api/session, ...).
    app.include_router(views.router)
    mount_dashboard(app, DashboardDeps(database_url=settings.database_url, viewer=require(Role.VIEWER)))
    return app


def server_config(
    app: FastAPI, settings: ApiSettings, host: str | None = None, port: int | None = None
) -> uvicorn.Config:
    """How ``takt api`` serves the app (and the tests that start a real server)."""
    return uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        # The Guard believes X-Forwarded-For/-Proto only from TAKT_TRUSTED_PROXIES; uvicorn's
        # own proxy handling would rewrite the client address for any loopback peer.
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )


def _days(days: float | None) -> timedelta | None:
    return None if days is None else timedelta(days=days)
