"""``takt db``: database schema management."""

from __future__ import annotations

import click

# `db` needs the cloud extra; importing its driver here lets `takt`
# say so before a command starts (takt.cli.LazyGroup) instead of failing midway.
from takt.settings import CommonSettings


@click.group()
def db() -> None:
    """Manage the database schema (Alembic migrations in takt/store/migrations).

    Reads TAKT_DATABASE_URL. Services refuse to start on an outdated schema,
    or with metric settings (TAKT_MAX_STATE_GAP_S) other than the rollups were
    built with (`takt db rebuild`).
    """


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (creates TimescaleDB hypertables where available)."""
    from takt.store.db import current_revision
    from takt.store.db import upgrade as run_upgrade

    settings = CommonSettings()
    run_upgrade(settings.database_url, revision)
    click.echo(f"database at revision {current_revision(settings.database_url)}")


@db.command()
def status() -> None:
    """Print the current and the required schema revision; exit 1 if they differ."""
    from takt.store.db import current_revision, head_revision

    settings = CommonSettings()
    current, head = current_revision(settings.database_url), head_revision()
    click.echo(f"current: {current or 'none'}\nrequired: {head}")
    if current != head:
        raise SystemExit(1)


@db.command()
def rebuild() -> None:
    """Re-derive every state duration and rebuild every rollup with this TAKT_MAX_STATE_GAP_S.

    For a metric setting changed on purpose: stop every collector and API
    first (a running one would go on deriving with its old value), run this,
    then start them with the new value. Takes minutes on millions of events.
    """
    import psycopg

    from takt.store.db import require_current_schema
    from takt.store.rollups import rebuild as run_rebuild

    settings = CommonSettings()
    require_current_schema(settings.database_url)
    with psycopg.connect(settings.database_url, autocommit=True, options="-c TimeZone=UTC") as conn:
        timings = run_rebuild(conn, max_gap_s=settings.max_state_gap_s)
    click.echo(
        f"rebuilt with TAKT_MAX_STATE_GAP_S={settings.max_state_gap_s:g}: derive {timings['derive']:.1f} s, "
        f"rollups {timings['rollups']:.1f} s"
    )
