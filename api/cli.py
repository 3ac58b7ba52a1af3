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
@click.option("--gateway", "gateway_id", default=None, help="Gateway tokens: the gateway it may send for.")
@click.option("--site", "site_id", default=None, help="Gateway tokens: that gateway's site.")
def token_create(role: str, name: str | None, gateway_id: str | None, site_id: str | None) -> None:
    """Create a token and print it once.

    A gateway token (--role gateway) is bound to one gateway and site
    (--gateway GW --site SITE, both required): it may store only events of
    that gateway, as the broker's ACL lets the gateway publish only there.
    """
    import psycopg

    from api.security import create_token
    from api.settings import ApiSettings

    settings = ApiSettings()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        try:
            token = create_token(conn, Role(role), name, gateway_id=gateway_id, site_id=site_id)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        click.echo(token)
