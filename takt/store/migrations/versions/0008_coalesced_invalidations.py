"""One invalidation per worker, station and hour; the settings the rollups were built with.

Revision ID: 0008_coalesced_invalidations
Revises: 0007_event_identity
Create Date: 2026-12-02

- ``event_invalidations.bucket``: the hour (UTC, from 2000-01-01) of
  ``min_ts``; ``slot``: the second its writing transaction began in; a
  unique index on (worker_id, station_id, bucket, slot). Writers upsert
  (``takt.store.events.INVALIDATE``): a batch for a key-hour already queued
  in the same second widens that row's range and gives it a new ``id`` from
  the same sequence, instead of adding a row. The refresher deletes the rows
  it consumed by ``id``, so a row widened meanwhile (new id) stays queued;
  as only the current second's rows are widened, a round that runs long still
  consumes everything older, and what it leaves spans about a second of
  batches. (Without the slot, a round slower than the batch interval would
  find every live row widened, consume none, and the next round would take
  on the whole hour.) The queue then holds one row per worker-station-hour
  and second instead of one per batch. The upgrade merges the rows already
  queued.
- ``rollup_meta.max_state_gap_s``: the ``TAKT_MAX_STATE_GAP_S`` the stored
  durations and rollups were derived with (NULL: not recorded yet; the first
  service to start records its own). A service started with another value
  refuses to start (``takt.store.rollups.require_metric_settings``) until
  the value is put back or ``takt db rebuild`` re-derives everything.
- ``events_shadow_worker_ts``: a partial index of shadow events per worker and
  time, so a refresh round (and the live tail) finds the shadow partitions
  near a pending range without reading the worker's production events in the
  gap before it (at 50 events/s per worker and a 600 s gap, 30,000 rows per
  worker and round).
"""

from alembic import op

revision = "0008_coalesced_invalidations"
down_revision = "0007_event_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE event_invalidations ADD COLUMN bucket timestamptz
        GENERATED ALWAYS AS (date_bin('1 hour', min_ts, TIMESTAMPTZ '2000-01-01 00:00:00+00')) STORED""")
    op.execute(
        "ALTER TABLE event_invalidations "
        "ADD COLUMN slot timestamptz NOT NULL DEFAULT date_trunc('second', now())"
    )
    op.execute("""
        WITH queued AS (
            DELETE FROM event_invalidations
            RETURNING worker_id, station_id, min_ts, max_ts, created_at, bucket
        )
        INSERT INTO event_invalidations (worker_id, station_id, min_ts, max_ts, created_at, slot)
        SELECT worker_id, station_id, min(min_ts), max(max_ts), min(created_at),
               date_trunc('second', min(created_at))
        FROM queued GROUP BY worker_id, station_id, bucket""")
    op.execute(
        "CREATE UNIQUE INDEX event_invalidations_key "
        "ON event_invalidations (worker_id, station_id, bucket, slot)"
    )
    op.execute("ALTER TABLE rollup_meta ADD COLUMN max_state_gap_s double precision")
    op.execute("CREATE INDEX events_shadow_worker_ts ON events (worker_id, ts) WHERE shadow")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS events_shadow_worker_ts")
    op.execute("ALTER TABLE rollup_meta DROP COLUMN IF EXISTS max_state_gap_s")
    op.execute("DROP INDEX IF EXISTS event_invalidations_key")
    op.execute("ALTER TABLE event_invalidations DROP COLUMN IF EXISTS bucket, DROP COLUMN IF EXISTS slot")
