"""Alert rules, incidents and their notifications (docs/alerts.md).

Revision ID: 0010_alerts
Revises: 0007_event_identity
Create Date: 2026-12-02

- ``alert_rules``: what to watch (kind, scope, threshold, quiet hours, enabled)
  and whom to tell (webhook URL and its HMAC secret, email recipients, MQTT,
  escalation after M minutes to further recipients).
- ``alert_incidents``: one row per episode of a rule's condition for one
  subject (a station, a gateway, ...): started, acknowledged (by whom, with a
  note), escalated, resolved. The partial unique index allows one open
  incident per rule and subject, so no two evaluators can open the same
  episode twice even without their advisory lock.
- ``api_tokens.role`` may be ``kiosk``: a view-only token for the andon
  wallboard (``GET /api/v1/andon`` only).
- ``alert_notifications``: the outbox. Each opened / escalated / resolved
  incident queues one row per channel and recipient in the same transaction;
  a sender claims rows (``FOR UPDATE SKIP LOCKED``), delivers them and marks
  them ``sent``, or ``dead`` with the reason after the last try.
"""

from alembic import op

revision = "0010_alerts"
down_revision = "0009_targets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check")
    op.execute(
        "ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check "
        "CHECK (role IN ('viewer', 'supervisor', 'admin', 'gateway', 'kiosk'))"
    )
    op.execute("""
        CREATE TABLE alert_rules (
            rule_id            bigserial PRIMARY KEY,
            name               text NOT NULL DEFAULT '',
            kind               text NOT NULL CHECK (kind IN (
                                   'station_idle', 'rate_below', 'behind_target', 'gateway_offline',
                                   'gateway_backlog', 'drift_flag', 'camera_view_wrong')),
            site_id            text NOT NULL,
            line_id            text,
            station_id         text,
            minutes            double precision NOT NULL DEFAULT 0 CHECK (minutes >= 0),
            threshold          double precision,
            window_minutes     double precision,
            quiet_hours        jsonb NOT NULL DEFAULT '[]'::jsonb,
            enabled            boolean NOT NULL DEFAULT true,
            webhook_url        text,
            webhook_secret     text,
            email              text[] NOT NULL DEFAULT '{}',
            mqtt               boolean NOT NULL DEFAULT false,
            escalate_minutes   double precision CHECK (escalate_minutes > 0),
            escalate_email     text[] NOT NULL DEFAULT '{}',
            escalate_webhook_url text,
            created_at         timestamptz NOT NULL DEFAULT now(),
            deleted_at         timestamptz
        )""")
    op.execute("""
        CREATE TABLE alert_incidents (
            incident_id     bigserial PRIMARY KEY,
            rule_id         bigint NOT NULL REFERENCES alert_rules (rule_id),
            site_id         text NOT NULL,
            subject         text NOT NULL,
            summary         text NOT NULL,
            details         jsonb NOT NULL DEFAULT '{}'::jsonb,
            condition_since timestamptz NOT NULL,
            started_at      timestamptz NOT NULL DEFAULT now(),
            acknowledged_at timestamptz,
            acknowledged_by text,
            ack_note        text,
            escalated_at    timestamptz,
            resolved_at     timestamptz
        )""")
    op.execute(
        "CREATE UNIQUE INDEX alert_incidents_one_open ON alert_incidents (rule_id, subject) "
        "WHERE resolved_at IS NULL"
    )
    op.execute("CREATE INDEX alert_incidents_site_started ON alert_incidents (site_id, started_at)")
    op.execute("""
        CREATE TABLE alert_notifications (
            notification_id bigserial PRIMARY KEY,
            incident_id     bigint NOT NULL REFERENCES alert_incidents (incident_id),
            event           text NOT NULL
                CHECK (event IN ('opened', 'escalated', 'acknowledged', 'resolved')),
            channel         text NOT NULL CHECK (channel IN ('webhook', 'email', 'mqtt')),
            target          text NOT NULL,
            status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
            attempts        integer NOT NULL DEFAULT 0,
            reason          text,
            created_at      timestamptz NOT NULL DEFAULT now(),
            sent_at         timestamptz
        )""")
    op.execute(
        "CREATE INDEX alert_notifications_pending ON alert_notifications (notification_id) "
        "WHERE status = 'pending'"
    )


def downgrade() -> None:
    for table in ("alert_notifications", "alert_incidents", "alert_rules"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DELETE FROM api_tokens WHERE role = 'kiosk'")
    op.execute("ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check")
    op.execute(
        "ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check "
        "CHECK (role IN ('viewer', 'supervisor', 'admin', 'gateway'))"
    )
