"""``takt api``: serve the metrics API; ``takt api token create|list|revoke``: manage bearer tokens."""

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

    from api.app import create_app, server_config
    from api.settings import ApiSettings
    from takt.logs import configure_logging

    settings = ApiSettings()
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.Server(server_config(create_app(settings), settings, host, port)).run()


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
    A kiosk token (--role kiosk) reads the andon wallboard only
    (/dashboard/andon#token=..., docs/alerts.md).
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


@token.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
def token_list(include_revoked: bool) -> None:
    """List tokens: id, role, name, created, revoked (the secrets are not stored)."""
    import psycopg

    from api.security import list_tokens
    from api.settings import ApiSettings

    settings = ApiSettings()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        tokens = list_tokens(conn, include_revoked=include_revoked)
    click.echo(f"{'ID':>6}  {'ROLE':<10}  {'CREATED':<25}  {'REVOKED':<25}  NAME")
    for t in tokens:
        revoked = t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else "-"
        created = t.created_at.isoformat(timespec="seconds")
        click.echo(f"{t.token_id:>6}  {t.role.value:<10}  {created:<25}  {revoked:<25}  {t.name or '-'}")


@token.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke the token with this id (see `takt api token list`).

    Running API processes stop accepting it within TAKT_TOKEN_CACHE_TTL_S seconds.
    """
    import psycopg

    from api.security import revoke_token
    from api.settings import ApiSettings

    settings = ApiSettings()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        if not revoke_token(conn, token_id):
            raise click.ClickException(f"no active token with id {token_id}")
    click.echo(f"revoked token {token_id}; API processes refuse it within {settings.token_cache_ttl_s:g} s")
