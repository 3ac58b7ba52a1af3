"""Metrics: hourly rollups kept by takt.store.rollups, API tokens.

Revision ID: 0002_metrics
Revises: 0001_base
Create Date: 2026-11-23

The rollups are plain tables maintained by :mod:`takt.store.rollups`, on
TimescaleDB as well as on plain PostgreSQL: a state's duration depends on the
worker's *next* state event (a window function, which continuous aggregates
cannot express) and a late event changes the previous one's duration, so the
refresher derives ``effective_duration_s`` first and then re-aggregates the
affected hours. On TimescaleDB the rollup tables become hypertables with
compression and retention policies (see ``takt.store.rollups.apply_policies``).
"""

from alembic import op
from sqlalchemy import text

revision = "0002_metrics"
down_revision = "0001_base"
branch_labels = None
depends_on = None

ROLLUP_TABLES = (
    "rollup_hour",
    "rollup_worker_hour",
    "rollup_station_hour",
    "rollup_worker_day",
    "rollup_station_day",
)


def upgrade() -> None:
    bind = op.get_bind()
    has_timescale = bind.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).first()

    # Window edges and raw-scan fallbacks read events by time alone.
    op.execute("CREATE INDEX IF NOT EXISTS events_ts ON events (ts)")

    # Every dimension is NOT NULL ('' for a missing value) so it can be part of
    # the primary key. Seconds are state time clipped to the hour; units and
    # events are attributed to the hour of the event's timestamp.
    op.execute("""
        CREATE TABLE rollup_hour (
            bucket         timestamptz NOT NULL,
            site_id        text NOT NULL,
            worker_id      text NOT NULL,
            station_id     text NOT NULL,
            event_type     text NOT NULL,
            model_version  text NOT NULL,
            shadow         boolean NOT NULL,
            seconds        double precision NOT NULL DEFAULT 0,
            units          bigint NOT NULL DEFAULT 0,
            events         bigint NOT NULL DEFAULT 0,
            conf_sum       double precision NOT NULL DEFAULT 0,
            conf_min       double precision,
            conf_max       double precision,
            PRIMARY KEY (bucket, site_id, worker_id, station_id, event_type, model_version, shadow)
        )""")
    # Narrow projections of rollup_hour (production events only) so the
    # 30-day queries read one row per worker-hour / station-hour.
    op.execute("""
        CREATE TABLE rollup_worker_hour (
            bucket      timestamptz NOT NULL,
            site_id     text NOT NULL,
            worker_id   text NOT NULL,
            working_s   double precision NOT NULL DEFAULT 0,
            idle_s      double precision NOT NULL DEFAULT 0,
            absent_s    double precision NOT NULL DEFAULT 0,
            units       bigint NOT NULL DEFAULT 0,
            events      bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (bucket, site_id, worker_id)
        )""")
    # Union seconds per station and hour: any worker working or idle
    # (occupied), any working, any state (observed). Unions of disjoint hours
    # add up, so these sum exactly across hours.
    op.execute("""
        CREATE TABLE rollup_station_hour (
            bucket      timestamptz NOT NULL,
            site_id     text NOT NULL,
            station_id  text NOT NULL,
            occupied_s  double precision NOT NULL DEFAULT 0,
            working_s   double precision NOT NULL DEFAULT 0,
            observed_s  double precision NOT NULL DEFAULT 0,
            units       bigint NOT NULL DEFAULT 0,
            events      bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (bucket, site_id, station_id)
        )""")
    # Whole UTC days of the two tables above, so long windows read few rows.
    op.execute("CREATE TABLE rollup_worker_day (LIKE rollup_worker_hour INCLUDING ALL)")
    op.execute("CREATE TABLE rollup_station_day (LIKE rollup_station_hour INCLUDING ALL)")
    # The longest effective duration ever derived: how far back a window
    # edge must look for a state that reaches into it.
    op.execute("""
        CREATE TABLE rollup_meta (
            id                int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            max_duration_s    double precision NOT NULL DEFAULT 0,
            refreshed_at      timestamptz
        )""")
    op.execute("INSERT INTO rollup_meta (id) VALUES (1)")
    if has_timescale:
        for table in ROLLUP_TABLES:
            op.execute(
                f"SELECT create_hypertable('{table}', 'bucket', chunk_time_interval => interval '7 days')"
            )

    op.execute("""
        CREATE TABLE api_tokens (
            token_id    bigserial PRIMARY KEY,
            token_hash  text NOT NULL UNIQUE,   -- sha256 hex; the token itself is never stored
            role        text NOT NULL CHECK (role IN ('viewer', 'supervisor', 'admin', 'gateway')),
            name        text,
            created_at  timestamptz NOT NULL DEFAULT now(),
            revoked_at  timestamptz
        )""")


def downgrade() -> None:
    for table in ("api_tokens", "rollup_meta", *ROLLUP_TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP INDEX IF EXISTS events_ts")
