"""Quarantine of work items that made a background round fail.

Revision ID: 0006_quarantine
Revises: 0005_rollup_detail
Create Date: 2026-12-01

``event_invalidations_quarantine``: invalidations the rollup refresher could
not process (a time outside the supported range, or any error while
processing them alone), moved out of the queue with the reason so they cannot
fail every round again. An operator reads them, fixes or deletes the events
they name, and re-queues or drops them (docs/delivery.md).
"""

from alembic import op

revision = "0006_quarantine"
down_revision = "0005_rollup_detail"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE event_invalidations_quarantine (
            id              bigint PRIMARY KEY,          -- the id it had in event_invalidations
            worker_id       text NOT NULL,
            station_id      text NOT NULL,
            min_ts          timestamptz NOT NULL,
            max_ts          timestamptz NOT NULL,
            created_at      timestamptz NOT NULL,
            quarantined_at  timestamptz NOT NULL DEFAULT now(),
            reason          text NOT NULL
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS event_invalidations_quarantine")
