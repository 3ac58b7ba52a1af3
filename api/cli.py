"""``takt api``: serve the metrics API; ``takt api token create``: manage bearer tokens."""

from __future__ import annotations

import click

from api.security import Role


@click.group(invoke_without_command=True)
@click.option("--host", default=None, help="Listen address (default TAKT_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (default TAKT_PORT or 8000).")
@click.pass_context
def api(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the metrics and ingestion API (uvicorn)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from api.app import create_app
    from api.settings import ApiSettings
    from takt.logs import configure_logging

    settings = ApiSettings()
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
    )


@api.group()
def token() -> None:
    """Bearer tokens (only their hashes are stored)."""


@token.command("create")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--name", default=None, help="Who or what the token is for.")
def token_create(role: str, name: str | None) -> None:
    """Create a token and print it once."""
    import psycopg

    from api.security import create_token
    from api.settings import ApiSettings

    settings = ApiSettings()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        click.echo(create_token(conn, Role(role), name))
