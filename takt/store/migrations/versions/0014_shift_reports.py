"""Shift reports on a schedule: recipients per site, one stored report per site × shift occurrence, an outbox.

Revision ID: 0014_shift_reports
Revises: 0011_privacy
Create Date: 2026-12-02

- ``report_recipients``: per site, the email addresses the shift report goes
  to, with who added each and when (``PUT /api/v1/reports/recipients/{site}``).
- ``shift_reports``: one row per site, shift and occurrence (its start), made
  once at the shift's end by the API process holding the round's advisory
  lock; the unique key backs the lock, so a second process or a restart can
  never make a second one. The report's HTML and PDF are stored as sent.
- ``shift_report_deliveries``: the outbox, one row per recipient, written in
  the transaction that makes the report; a sender claims rows
  (``FOR UPDATE SKIP LOCKED``), emails them and marks them ``sent``, or
  ``dead`` with the reason after the last try.
"""

from alembic import op

revision = "0014_shift_reports"
down_revision = "0013_units_rollup"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE report_recipients (
            site_id     text NOT NULL,
            email       text NOT NULL,
            added_by    text NOT NULL,
            added_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (site_id, email)
        )""")
    op.execute("""
        CREATE TABLE shift_reports (
            report_id    bigserial PRIMARY KEY,
            site_id      text NOT NULL,
            shift        text NOT NULL,
            shift_start  timestamptz NOT NULL,
            shift_end    timestamptz NOT NULL CHECK (shift_end > shift_start),
            local_day    date NOT NULL,
            subject      text NOT NULL,
            html         text NOT NULL,
            pdf          bytea NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            UNIQUE (site_id, shift, shift_start)
        )""")
    op.execute("CREATE INDEX shift_reports_site_end ON shift_reports (site_id, shift_end)")
    op.execute("""
        CREATE TABLE shift_report_deliveries (
            delivery_id  bigserial PRIMARY KEY,
            report_id    bigint NOT NULL REFERENCES shift_reports (report_id) ON DELETE CASCADE,
            recipient    text NOT NULL,
            status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
            attempts     integer NOT NULL DEFAULT 0,
            reason       text,
            created_at   timestamptz NOT NULL DEFAULT now(),
            sent_at      timestamptz,
            UNIQUE (report_id, recipient)
        )""")
    op.execute(
        "CREATE INDEX shift_report_deliveries_pending ON shift_report_deliveries (delivery_id) "
        "WHERE status = 'pending'"
    )


def downgrade() -> None:
    for table in ("shift_report_deliveries", "shift_reports", "report_recipients"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
