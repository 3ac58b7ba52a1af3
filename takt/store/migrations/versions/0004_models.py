"""Model versions: deployed versions mirrored from events (cv_models), drift flags.

Revision ID: 0004_models
Revises: 0003_event_aggregates
Create Date: 2026-11-23

``cv_models`` and ``cv_model_gateways`` are filled by the event writer
(``takt.store.events``) in the statement that stores the events: the first
time a version, or a version on a gateway, is stored. Whether a gateway still
runs it comes from its status heartbeat (``gateways.status``) at query time.
"""

from alembic import op

revision = "0004_models"
down_revision = "0003_event_aggregates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE cv_models (
            model_version      text PRIMARY KEY,   -- name@version, as stamped on events
            -- earliest event timestamp of the batch that first brought this version
            first_seen         timestamptz NOT NULL,
            first_received_at  timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE cv_model_gateways (
            model_version      text NOT NULL,
            gateway_id         text NOT NULL,      -- '' for events that name no gateway (HTTP)
            shadow             boolean NOT NULL,
            site_id            text,
            first_seen         timestamptz NOT NULL,
            first_received_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (model_version, gateway_id, shadow)
        )""")
    # Backfill from what is stored already, so upgrading a running site loses nothing.
    op.execute("""
        INSERT INTO cv_models (model_version, first_seen)
        SELECT model_version, min(ts) FROM events WHERE model_version IS NOT NULL GROUP BY 1""")
    op.execute("""
        INSERT INTO cv_model_gateways (model_version, gateway_id, shadow, site_id, first_seen)
        SELECT model_version, coalesce(gateway_id, ''), shadow, min(site_id), min(ts) FROM events
        WHERE model_version IS NOT NULL GROUP BY 1, 2, 3""")
    op.execute("""
        CREATE TABLE drift_flags (
            id            bigserial PRIMARY KEY,
            checked_at    timestamptz NOT NULL,
            site_id       text NOT NULL DEFAULT '',
            subject_kind  text NOT NULL CHECK (subject_kind IN ('station', 'camera')),
            subject_id    text NOT NULL,
            metric        text NOT NULL,       -- confidence_psi, confidence_quantile_shift, state_mix_psi
            value         double precision NOT NULL,
            threshold     double precision NOT NULL,
            baseline_from timestamptz NOT NULL,
            baseline_to   timestamptz NOT NULL,
            recent_from   timestamptz NOT NULL,
            recent_to     timestamptz NOT NULL,
            details       jsonb NOT NULL DEFAULT '{}'::jsonb,
            -- false once a later check of the same subject no longer flags it
            active        boolean NOT NULL DEFAULT true
        )""")
    op.execute(
        "CREATE INDEX drift_flags_active ON drift_flags (site_id, subject_kind, subject_id) WHERE active"
    )
    op.execute("CREATE INDEX drift_flags_checked ON drift_flags (checked_at)")


def downgrade() -> None:
    for table in ("drift_flags", "cv_model_gateways", "cv_models"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
