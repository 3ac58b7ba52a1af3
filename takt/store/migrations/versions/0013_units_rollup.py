"""Units and rejects per hour (and day), station and SKU: the rollup behind quality and SKU performance.

Revision ID: 0013_units_rollup
Revises: 0011_privacy
Create Date: 2026-12-02

- ``rollup_units_hour`` (per hour × site × station × SKU, production
  ``product_count`` events only): ``units`` (Σ ``count``), ``rejected``
  (Σ ``rejected``, an unreported count as 0), ``reported`` (Σ ``count`` of the
  events that report ``rejected``) and ``events``. ``sku`` is '' for units
  without one. Units are point events (no duration to derive), so a
  station-hour's row depends on that hour's events only; the refresher rebuilds
  the rows of the station-hours a round touches (``takt.store.rollups``) and
  readers take the hours still queued in ``event_invalidations`` from
  ``events`` (``api.metrics.units``, docs/metrics.md "Quality").

A hypertable where TimescaleDB is installed. The upgrade fills it from the
stored events; the SQL is frozen here so later code cannot change what this
migration does.
"""

from alembic import op
from sqlalchemy import text

revision = "0013_units_rollup"
down_revision = "0012_live_parts"
branch_labels = None
depends_on = None

BACKFILL = """
INSERT INTO rollup_units_hour (bucket, site_id, station_id, sku, units, rejected, reported, events)
SELECT date_bin('1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00'), coalesce(site_id, ''), station_id,
       coalesce(sku, ''), sum(count), sum(coalesce(rejected, 0)),
       coalesce(sum(count) FILTER (WHERE rejected IS NOT NULL), 0), count(*)
FROM events WHERE event_type = 'product_count' AND NOT shadow
GROUP BY 1, 2, 3, 4
"""
BACKFILL_DAYS = """
INSERT INTO rollup_units_day (bucket, site_id, station_id, sku, units, rejected, reported, events)
SELECT date_bin('1 day', bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00'), site_id, station_id, sku, sum(units),
       sum(rejected), sum(reported), sum(events)
FROM rollup_units_hour GROUP BY 1, 2, 3, 4
"""
TABLES = ("rollup_units_hour", "rollup_units_day")


def upgrade() -> None:
    bind = op.get_bind()
    op.execute("""
        CREATE TABLE rollup_units_hour (
            bucket      timestamptz NOT NULL,
            site_id     text NOT NULL,
            station_id  text NOT NULL,
            sku         text NOT NULL,
            units       bigint NOT NULL,
            rejected    bigint NOT NULL,
            reported    bigint NOT NULL,
            events      bigint NOT NULL,
            PRIMARY KEY (bucket, site_id, station_id, sku)
        )""")
    op.execute("CREATE TABLE rollup_units_day (LIKE rollup_units_hour INCLUDING ALL)")
    timescale = bind.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).first()
    for table in TABLES:
        # The refresher rebuilds, and one station's figures read, a station's hours and days.
        op.execute(f"CREATE INDEX {table}_station ON {table} (station_id, bucket)")
        if timescale:
            op.execute(
                f"SELECT create_hypertable('{table}', 'bucket', chunk_time_interval => interval '7 days')"
            )
    op.execute(BACKFILL)
    op.execute(BACKFILL_DAYS)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table}")
