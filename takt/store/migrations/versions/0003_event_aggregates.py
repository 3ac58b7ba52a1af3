"""Event aggregates per minute and per hour: continuous aggregates on TimescaleDB.

Revision ID: 0003_event_aggregates
Revises: 0002_metrics
Create Date: 2026-11-23

``events_minute`` and ``events_hour``: per bucket × worker × station × event
type × model version × shadow flag, the event count, units, summed
``effective_duration_s`` and confidence statistics (for the ML team's
per-model comparisons). On TimescaleDB they are continuous aggregates
(``events_hour`` is built on ``events_minute``) with real-time aggregation
on, since it is off by default from 2.13, and refresh policies reaching back
8 days, so events replayed up to 7 days late and durations the refresher
re-derives (an UPDATE invalidates the buckets it touches) are picked up.
On plain PostgreSQL they are views with the same columns: always current.

Metric endpoints read the refresher's rollups (docs/metrics.md), because a
state's duration depends on the next event; these aggregates sum the already
derived durations and need no window function.
"""

from alembic import op
from sqlalchemy import text

revision = "0003_event_aggregates"
down_revision = "0002_metrics"
branch_labels = None
depends_on = None

# Late data we promise to reflect (docs/delivery.md) plus a day of margin.
REFRESH_WINDOW = "8 days"

_MINUTE_COLUMNS = """
    worker_id, station_id, event_type, model_version, shadow,
    count(*) AS events,
    sum(count) AS units,
    sum(effective_duration_s) AS duration_s,
    sum(confidence) AS confidence_sum,
    sum(confidence * confidence) AS confidence_sumsq,
    min(confidence) AS confidence_min,
    max(confidence) AS confidence_max
"""
_GROUP = "GROUP BY 1, worker_id, station_id, event_type, model_version, shadow"

_HOUR_FROM_MINUTE = """
    worker_id, station_id, event_type, model_version, shadow,
    sum(events) AS events,
    sum(units) AS units,
    sum(duration_s) AS duration_s,
    sum(confidence_sum) AS confidence_sum,
    sum(confidence_sumsq) AS confidence_sumsq,
    min(confidence_min) AS confidence_min,
    max(confidence_max) AS confidence_max
"""


def upgrade() -> None:
    bind = op.get_bind()
    has_timescale = bind.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).first()
    if not has_timescale:
        op.execute(
            f"CREATE VIEW events_minute AS SELECT date_trunc('minute', ts) AS bucket, {_MINUTE_COLUMNS} "
            f"FROM events {_GROUP}"
        )
        op.execute(
            f"CREATE VIEW events_hour AS SELECT date_trunc('hour', ts) AS bucket, {_MINUTE_COLUMNS} "
            f"FROM events {_GROUP}"
        )
        return
    # Continuous aggregates cannot be created inside a transaction block.
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE MATERIALIZED VIEW events_minute "
            "WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS "
            f"SELECT time_bucket(interval '1 minute', ts) AS bucket, {_MINUTE_COLUMNS} "
            f"FROM events {_GROUP} WITH NO DATA"
        )
        op.execute(
            "CREATE MATERIALIZED VIEW events_hour "
            "WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS "
            f"SELECT time_bucket(interval '1 hour', bucket) AS bucket, {_HOUR_FROM_MINUTE} "
            f"FROM events_minute {_GROUP} WITH NO DATA"
        )
        op.execute(
            "SELECT add_continuous_aggregate_policy('events_minute', "
            f"start_offset => interval '{REFRESH_WINDOW}', end_offset => interval '1 minute', "
            "schedule_interval => interval '1 minute')"
        )
        op.execute(
            "SELECT add_continuous_aggregate_policy('events_hour', "
            f"start_offset => interval '{REFRESH_WINDOW}', end_offset => interval '1 hour', "
            "schedule_interval => interval '5 minutes')"
        )


def downgrade() -> None:
    bind = op.get_bind()
    has_timescale = bind.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).first()
    kind = "MATERIALIZED VIEW" if has_timescale else "VIEW"
    op.execute(f"DROP {kind} IF EXISTS events_hour")
    op.execute(f"DROP {kind} IF EXISTS events_minute")
