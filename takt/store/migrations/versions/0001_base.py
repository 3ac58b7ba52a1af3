"""Base schema: events (a hypertable where TimescaleDB exists), registry, dead letters, audit.

Revision ID: 0001_base
Revises:
Create Date: 2026-11-23
"""

from alembic import op
from sqlalchemy import text

revision = "0001_base"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    has_timescale = bind.execute(
        text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    ).first()
    if has_timescale:
        op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")

    op.execute("""
        CREATE TABLE workers (
            worker_id   text PRIMARY KEY,
            name        text NOT NULL,
            department  text,
            shift       text,
            -- false: first seen in an event, not (yet) entered by a person
            registered  boolean NOT NULL DEFAULT true,
            created_at  timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE workstations (
            station_id        text PRIMARY KEY,
            name              text NOT NULL,
            type              text,
            location          text,
            capacity_per_hour double precision,
            registered        boolean NOT NULL DEFAULT true,
            created_at        timestamptz NOT NULL DEFAULT now()
        )""")
    # The primary key includes ts because TimescaleDB requires every unique
    # index of a hypertable to contain its time column.
    op.execute("""
        CREATE TABLE events (
            event_id             uuid NOT NULL,
            ts                   timestamptz NOT NULL,
            worker_id            text NOT NULL,
            station_id           text NOT NULL,
            event_type           text NOT NULL
                CHECK (event_type IN ('working', 'idle', 'absent', 'product_count')),
            confidence           double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
            count                integer NOT NULL DEFAULT 0 CHECK (count >= 0),
            duration_s           double precision CHECK (duration_s >= 0),
            -- duration_s when given, else derived from the worker's next state
            -- event (see docs/metrics.md); NULL until derived; NULL for counts
            effective_duration_s double precision,
            model_version        text,
            camera_id            text,
            site_id              text,
            gateway_id           text,
            seq                  bigint,
            config_version       text,
            shadow               boolean NOT NULL DEFAULT false,
            received_at          timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (event_id, ts)
        )""")
    if has_timescale:
        op.execute("SELECT create_hypertable('events', 'ts', chunk_time_interval => interval '1 day')")
    op.execute("CREATE INDEX events_worker_ts ON events (worker_id, ts)")
    op.execute("CREATE INDEX events_station_ts ON events (station_id, ts)")
    # Work queue for derived durations and rollups: which (worker, station,
    # time range) new rows touched. Written in the same transaction as them.
    op.execute("""
        CREATE TABLE event_invalidations (
            id          bigserial PRIMARY KEY,
            worker_id   text NOT NULL,
            station_id  text NOT NULL,
            min_ts      timestamptz NOT NULL,
            max_ts      timestamptz NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE dead_letters (
            id           bigserial PRIMARY KEY,
            received_at  timestamptz NOT NULL DEFAULT now(),
            source       text NOT NULL,          -- 'mqtt' or 'http'
            topic        text,
            gateway_id   text,
            event_index  integer,                -- position in its batch; NULL: whole payload
            seq          bigint,
            reason       text NOT NULL,
            payload      bytea NOT NULL
        )""")
    op.execute("CREATE INDEX dead_letters_received ON dead_letters (received_at)")
    op.execute("""
        CREATE TABLE gateways (
            gateway_id     text PRIMARY KEY,
            site_id        text,
            state          text NOT NULL DEFAULT 'unknown',
            last_seen      timestamptz,
            status         jsonb NOT NULL DEFAULT '{}'::jsonb,
            first_seen     timestamptz NOT NULL DEFAULT now()
        )""")
    # Audit of sequence numbers received per gateway, as merged inclusive ranges.
    op.execute("""
        CREATE TABLE gateway_seq_ranges (
            gateway_id  text NOT NULL,
            first_seq   bigint NOT NULL,
            last_seq    bigint NOT NULL,
            PRIMARY KEY (gateway_id, first_seq),
            CHECK (last_seq >= first_seq)
        )""")


def downgrade() -> None:
    for table in (
        "gateway_seq_ranges",
        "gateways",
        "dead_letters",
        "event_invalidations",
        "events",
        "workstations",
        "workers",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
