"""``takt db``: database schema management."""

from __future__ import annotations

import click

# The collector and `db` need the cloud extra; importing its driver here lets `takt`
# say so before a command starts (takt.cli.LazyGroup) instead of failing midway.
import psycopg

from takt.settings import CommonSettings


@click.group()
def db() -> None:
    """Manage the database schema (Alembic migrations in collector/migrations).

    Reads TAKT_DATABASE_URL. Services refuse to start on an outdated schema.
    """


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (creates TimescaleDB hypertables where available)."""
    from collector.db import current_revision
    from collector.db import upgrade as run_upgrade

    settings = CommonSettings()
    run_upgrade(settings.database_url, revision)
    click.echo(f"database at revision {current_revision(settings.database_url)}")


@db.command()
def status() -> None:
    """Print the current and the required schema revision; exit 1 if they differ."""
    from collector.db import current_revision, head_revision

    settings = CommonSettings()
    current, head = current_revision(settings.database_url), head_revision()
    click.echo(f"current: {current or 'none'}\nrequired: {head}")
    if current != head:
        raise SystemExit(1)


@click.command()
def collector() -> None:
    """Run the collector: MQTT event batches -> database, then commit acks to gateways.

    Reads TAKT_* settings (`takt config show`). Refuses to start on an outdated
    database schema (run `takt db upgrade`).
    """
    import sqlalchemy.exc

    from collector.db import SchemaError, require_current_schema
    from collector.service import CollectorError, run
    from collector.settings import CollectorSettings
    from takt.logs import configure_logging

    settings = CollectorSettings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        require_current_schema(settings.database_url)
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as exc:
        raise click.ClickException(f"cannot reach the database to check its schema: {exc}") from None
    try:
        run(settings)
    except CollectorError as exc:
        raise click.ClickException(str(exc)) from None
