"""Privacy: site-scoped reader tokens and the append-only audit of per-person reads.

Revision ID: 0011_privacy
Revises: 0007_event_identity
Create Date: 2026-12-02

- ``api_tokens.sites``: the sites a reader token (viewer, supervisor, admin)
  may read; NULL reads every site (tokens made before this revision). Gateway
  tokens keep their single ``site_id`` and never get ``sites``.
- ``privacy_audit``: one row per read of per-person data (who, what, when),
  and per privacy action (erasure). Append-only: a trigger refuses UPDATE,
  DELETE and TRUNCATE for every role, the table's owner included, and
  UPDATE/DELETE/TRUNCATE are revoked from PUBLIC as well (docs/privacy.md).
"""

from alembic import op

revision = "0011_privacy"
down_revision = "0010_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE api_tokens ADD COLUMN sites text[]")
    op.execute("""
        ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_sites CHECK (
            sites IS NULL OR (role <> 'gateway' AND cardinality(sites) > 0)
        )""")
    op.execute("""
        CREATE TABLE privacy_audit (
            id         bigserial PRIMARY KEY,
            at         timestamptz NOT NULL DEFAULT now(),
            actor      text NOT NULL,        -- 'token:<id>', 'admin-token' or 'cli:<user>'
            role       text NOT NULL,
            action     text NOT NULL,        -- 'read' or a privacy action ('erase')
            resource   text NOT NULL,        -- the route or command, e.g. GET /api/v1/metrics/workers
            subject    text,                 -- the worker asked about; NULL: every visible worker
            sites      text[],               -- the token's sites; NULL: all sites
            detail     jsonb NOT NULL DEFAULT '{}'::jsonb
        )""")
    op.execute("CREATE INDEX privacy_audit_at ON privacy_audit (at)")
    op.execute("""
        CREATE FUNCTION privacy_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'privacy_audit is append-only (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$""")
    op.execute("""
        CREATE TRIGGER privacy_audit_append_only BEFORE UPDATE OR DELETE ON privacy_audit
        FOR EACH ROW EXECUTE FUNCTION privacy_audit_append_only()""")
    op.execute("""
        CREATE TRIGGER privacy_audit_no_truncate BEFORE TRUNCATE ON privacy_audit
        FOR EACH STATEMENT EXECUTE FUNCTION privacy_audit_append_only()""")
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON privacy_audit FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS privacy_audit")
    op.execute("DROP FUNCTION IF EXISTS privacy_audit_append_only()")
    op.execute("ALTER TABLE api_tokens DROP CONSTRAINT IF EXISTS api_tokens_sites")
    op.execute("ALTER TABLE api_tokens DROP COLUMN IF EXISTS sites")
