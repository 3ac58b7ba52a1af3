"""Targets and lines: ideal cycle times with effective dates (history kept), lines of ordered stations.

Revision ID: 0009_targets
Revises: 0007_event_identity
Create Date: 2026-12-02

- ``station_targets``: one row per change, never updated: the target in force
  at ``t`` is the row with the latest ``effective_from`` <= ``t`` (ties: the
  highest ``target_id``, the one recorded last). ``sku`` is '' for the
  station-wide target. ``set_by`` / ``set_at`` record who made the change and
  when (docs/metrics.md, "Targets").
- ``lines`` / ``line_stations``: a line belongs to one site and lists its
  stations in order (``position`` from 0).
- ``loss_reasons``: per site, the reasons lost time can be tagged with;
  ``loss_sites`` the per-site threshold below which a loss segment needs no
  reason (default 300 s). ``loss_tags``: a reason on a time range of a station
  (optionally one worker there), with who tagged it and when. Tags are time
  ranges, not references to derived segments, so they survive re-derivation.
- ``events.rejected`` / ``events.sku``: the contract's optional reject count
  and product of a ``product_count`` event (NULL: not reported).
"""

from alembic import op

revision = "0009_targets"
down_revision = "0008_coalesced_invalidations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: a catalogue change only, also on compressed hypertable chunks.
    op.execute("ALTER TABLE events ADD COLUMN rejected integer CHECK (rejected >= 0)")
    op.execute("ALTER TABLE events ADD COLUMN sku text")
    op.execute("""
        CREATE TABLE station_targets (
            target_id          bigserial PRIMARY KEY,
            station_id         text NOT NULL,
            sku                text NOT NULL DEFAULT '',
            effective_from     timestamptz NOT NULL,
            ideal_cycle_time_s double precision NOT NULL
                CHECK (ideal_cycle_time_s > 0 AND ideal_cycle_time_s <= 86400),
            set_by             text NOT NULL,
            set_at             timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX station_targets_lookup ON station_targets (station_id, sku, effective_from)")
    op.execute("""
        CREATE TABLE lines (
            line_id     text PRIMARY KEY,
            site_id     text NOT NULL,
            name        text NOT NULL,
            updated_by  text NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE line_stations (
            line_id     text NOT NULL REFERENCES lines (line_id) ON DELETE CASCADE,
            position    integer NOT NULL CHECK (position >= 0),
            station_id  text NOT NULL,
            PRIMARY KEY (line_id, position),
            UNIQUE (line_id, station_id)
        )""")

    op.execute("""
        CREATE TABLE loss_sites (
            site_id               text PRIMARY KEY,
            untagged_threshold_s  double precision NOT NULL DEFAULT 300 CHECK (untagged_threshold_s >= 0)
        )""")
    op.execute("""
        CREATE TABLE loss_reasons (
            reason_id   bigserial PRIMARY KEY,
            site_id     text NOT NULL,
            code        text NOT NULL,
            label       text NOT NULL,
            created_by  text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            UNIQUE (site_id, code)
        )""")
    op.execute("""
        CREATE TABLE loss_tags (
            tag_id      bigserial PRIMARY KEY,
            site_id     text NOT NULL,
            station_id  text NOT NULL,
            worker_id   text,
            from_ts     timestamptz NOT NULL,
            to_ts       timestamptz NOT NULL CHECK (to_ts > from_ts),
            reason_id   bigint NOT NULL REFERENCES loss_reasons (reason_id),
            tagged_by   text NOT NULL,
            tagged_at   timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX loss_tags_station ON loss_tags (station_id, from_ts)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS loss_tags")
    op.execute("DROP TABLE IF EXISTS loss_reasons")
    op.execute("DROP TABLE IF EXISTS loss_sites")
    op.execute("DROP TABLE IF EXISTS line_stations")
    op.execute("DROP TABLE IF EXISTS lines")
    op.execute("DROP TABLE IF EXISTS station_targets")
    op.execute("ALTER TABLE events DROP COLUMN IF EXISTS sku")
    op.execute("ALTER TABLE events DROP COLUMN IF EXISTS rejected")
