"""Sub-hour parts of busy live hours, so a refresh round costs what arrived since the last one.

Revision ID: 0012_live_parts
Revises: 0011_privacy
Create Date: 2026-12-02

- ``part`` (microseconds from the hour, default 0) on every per-hour rollup
  table (``rollup_hour``, ``rollup_worker_hour``, ``rollup_worker_detail``,
  ``rollup_station_hour``, ``rollup_station_detail``, ``rollup_model_hour``),
  in their primary keys. A row holds the elements (state pieces, union
  islands, events, units) of its key-hour that *start* in
  ``[part, the next part of the same key-hour)``; every reader sums rows, so
  an hour stored as one row (``part`` 0, as before) and an hour stored in
  parts read the same. The refresher writes a busy recent worker- or
  station-hour in parts of ``takt.store.rollups.PART_US`` and rewrites only
  the parts from the first changed element on; older hours are compacted
  back into one row (docs/metrics.md, "Storage: rollups").
- ``rollup_worker_detail.hi_us``: the latest end (a piece's end, an event's
  offset + 1) of what the row holds, so a station-hour rebuilt from an offset
  on reads only the worker rows that reach past it. NULL (rows written before
  this revision) is read as the end of the hour.
- Partial indexes of the rows in parts (``part > 0``), for the compaction, and
  ``rollup_hour (bucket, part)``: a round re-sums an hour's model rows from
  every worker's rows from a part on.

Existing rows keep ``part`` 0 (one row per hour, what they are): no rollup is
rebuilt. On TimescaleDB, changing the primary key of a hypertable with
compressed chunks is refused: decompress them first (or rebuild the rollups).
"""

from alembic import op

revision = "0012_live_parts"
down_revision = "0011_privacy"
branch_labels = None
depends_on = None

# (table, primary key columns before this revision)
KEYS = (
    ("rollup_hour", "bucket, site_id, worker_id, station_id, event_type, model_version, shadow"),
    ("rollup_worker_hour", "bucket, site_id, worker_id"),
    ("rollup_worker_detail", "bucket, site_id, worker_id, station_id, model_version, shadow"),
    ("rollup_station_hour", "bucket, site_id, station_id"),
    ("rollup_station_detail", "bucket, site_id, station_id"),
    ("rollup_model_hour", "bucket, site_id, model_version, shadow"),
)


def _primary_key(table: str, columns: str) -> None:
    op.execute(f"""
        DO $$
        DECLARE name text;
        BEGIN
            SELECT conname INTO name FROM pg_constraint
            WHERE conrelid = '{table}'::regclass AND contype = 'p';
            IF name IS NOT NULL THEN
                EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', name);
            END IF;
        END $$""")
    op.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({columns})")


def upgrade() -> None:
    for table, columns in KEYS:
        op.execute(f"ALTER TABLE {table} ADD COLUMN part bigint NOT NULL DEFAULT 0")
        _primary_key(table, f"{columns}, part")
    op.execute("ALTER TABLE rollup_worker_detail ADD COLUMN hi_us bigint")
    for table in ("rollup_worker_detail", "rollup_station_detail"):
        op.execute(f"CREATE INDEX {table}_parts ON {table} (bucket) WHERE part > 0")
    # A round re-sums the model rows of an hour from its rows of every worker from a part on.
    op.execute("CREATE INDEX rollup_hour_part ON rollup_hour (bucket, part)")


def downgrade() -> None:
    # Parts of one key-hour would collide in the old keys: drop them and queue their
    # worker-hours, so the refresher rebuilds them (and their stations) as whole hours.
    op.execute("""
        INSERT INTO event_invalidations (worker_id, station_id, min_ts, max_ts)
        SELECT DISTINCT worker_id, station_id, bucket, bucket + interval '1 hour' - interval '1 microsecond'
        FROM rollup_worker_detail d
        WHERE d.part > 0 OR EXISTS (
            SELECT 1 FROM rollup_station_detail s
            WHERE s.part > 0 AND s.bucket = d.bucket AND s.station_id = d.station_id
        )
        ON CONFLICT DO NOTHING""")
    for table in ("rollup_worker_detail", "rollup_station_detail"):
        op.execute(f"DROP INDEX IF EXISTS {table}_parts")
    op.execute("DROP INDEX IF EXISTS rollup_hour_part")
    op.execute("ALTER TABLE rollup_worker_detail DROP COLUMN hi_us")
    for table, columns in KEYS:
        op.execute(f"DELETE FROM {table} WHERE part > 0")
        _primary_key(table, columns)
        op.execute(f"ALTER TABLE {table} DROP COLUMN part")
