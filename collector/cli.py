"""``takt collector``: the MQTT collector's entry point."""

from __future__ import annotations

import click

# The collector needs the cloud extra; importing its driver here lets `takt`
# say so before a command starts (takt.cli.LazyGroup) instead of failing midway.
import psycopg


@click.command()
def collector() -> None:
    """Run the collector: MQTT event batches -> database, then commit acks to gateways.

    Reads TAKT_* settings (`takt config show`). Refuses to start on an outdated
    database schema (run `takt db upgrade`).
    """
    import sqlalchemy.exc

    from collector.service import CollectorError, run
    from collector.settings import CollectorSettings
    from takt.logs import configure_logging
    from takt.store.db import SchemaError, require_current_schema, require_metric_settings

    settings = CollectorSettings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        require_current_schema(settings.database_url)
        require_metric_settings(settings.database_url, max_gap_s=settings.max_state_gap_s)
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as exc:
        raise click.ClickException(f"cannot reach the database to check its schema: {exc}") from None
    try:
        run(settings)
    except CollectorError as exc:
        raise click.ClickException(str(exc)) from None
