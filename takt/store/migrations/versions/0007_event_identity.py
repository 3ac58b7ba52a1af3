"""Identity: event_id alone is the idempotency key; gateway tokens bound to their gateway; seq reuse audit.

Revision ID: 0007_event_identity
Revises: 0005_rollup_detail
Create Date: 2026-12-01

- ``event_ids``: the registry of stored event ids, keyed by ``event_id``
  alone, with the ``ts`` its event is stored under. TimescaleDB requires the
  time column in every unique index of a hypertable, so the primary key of
  ``events`` (event_id, ts) cannot make an id unique whatever its time; this
  plain table (never a hypertable) can. Writers register ids in the same
  transaction as their events (``takt.store.events``). The upgrade fills it
  from ``events``; an id stored more than once under different times (what
  this fixes) keeps its first received row; the later copies are deleted and
  the spans they touched queued for the rollups to be rebuilt.
- ``api_tokens.gateway_id`` / ``site_id``: the gateway and site a gateway
  token may store events for (``takt api token create --role gateway
  --gateway GW --site SITE``). Gateway tokens made before this revision have
  none and are refused for ingestion until re-issued.
- ``gateway_seq_reuse``: per gateway, how many new events arrived with a
  ``seq`` the gateway had already used for another event (its numbering went
  backwards or repeated), for the sequence audit.
"""

from alembic import op

revision = "0007_event_identity"
down_revision = "0006_quarantine"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE event_ids (
            event_id  uuid PRIMARY KEY,
            ts        timestamptz NOT NULL   -- the ts of the one events row with this id
        )""")
    op.execute("""
        INSERT INTO event_ids (event_id, ts)
        SELECT DISTINCT ON (event_id) event_id, ts FROM events ORDER BY event_id, received_at, ts""")
    op.execute("""
        WITH dropped AS (
            DELETE FROM events e USING event_ids r
            WHERE e.event_id = r.event_id AND e.ts <> r.ts
            RETURNING e.worker_id, e.station_id, e.ts,
                      e.ts + coalesce(e.effective_duration_s, 0) * interval '1 second' AS end_ts
        )
        INSERT INTO event_invalidations (worker_id, station_id, min_ts, max_ts)
        SELECT worker_id, station_id, ts, end_ts FROM dropped""")

    op.execute("ALTER TABLE api_tokens ADD COLUMN gateway_id text, ADD COLUMN site_id text")
    op.execute("""
        ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_binding CHECK (
            (gateway_id IS NULL) = (site_id IS NULL) AND (gateway_id IS NULL OR role = 'gateway')
        )""")

    op.execute("""
        CREATE TABLE gateway_seq_reuse (
            gateway_id     text PRIMARY KEY,
            reused         bigint NOT NULL,        -- new events numbered with a seq used before
            last_seq       bigint NOT NULL,        -- the latest such seq
            first_detected timestamptz NOT NULL DEFAULT now(),
            last_detected  timestamptz NOT NULL DEFAULT now()
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS gateway_seq_reuse")
    op.execute("ALTER TABLE api_tokens DROP CONSTRAINT IF EXISTS api_tokens_binding")
    op.execute("ALTER TABLE api_tokens DROP COLUMN IF EXISTS gateway_id, DROP COLUMN IF EXISTS site_id")
    op.execute("DROP TABLE IF EXISTS event_ids")
