"""``takt db``: database schema management."""

from __future__ import annotations

import click

# `db` needs the cloud extra; importing its driver here lets `takt`
# say so before a command starts (takt.cli.LazyGroup) instead of failing midway.
from takt.settings import CommonSettings


@click.group()
def db() -> None:
    """Manage the database schema (Alembic migrations in takt/store/migrations).

    Reads TAKT_DATABASE_URL. Services refuse to start on an outdated schema.
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
