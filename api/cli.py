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
@click.option(
    "--site",
    "sites",
    multiple=True,
    help="Gateway tokens: that gateway's one site. Reader tokens: a site it may read (repeat for "
    "more; none: every site).",
)
def token_create(role: str, name: str | None, gateway_id: str | None, sites: tuple[str, ...]) -> None:
    """Create a token and print it once.

    A gateway token (--role gateway) is bound to one gateway and site
    (--gateway GW --site SITE, both required): it may store only events of
    that gateway, as the broker's ACL lets the gateway publish only there.

    A viewer, supervisor or admin token given --site (once or more) reads
    only those sites: every other site's data is invisible to it and ids from
    there answer 404 (docs/privacy.md). A kiosk token (--role kiosk) reads the
    andon wallboard only (/dashboard/andon#token=..., docs/alerts.md).
    """
    import psycopg

    from api.security import create_token
    from api.settings import ApiSettings

    settings = ApiSettings()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        try:
            if Role(role) is Role.GATEWAY:
                if len(sites) > 1:
                    raise ValueError("a gateway token is bound to one site (--site SITE once)")
                token = create_token(
                    conn, Role.GATEWAY, name, gateway_id=gateway_id, site_id=sites[0] if sites else None
                )
            else:
                token = create_token(conn, Role(role), name, gateway_id=gateway_id, sites=sites or None)
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
    click.echo(f"{'ID':>6}  {'ROLE':<10}  {'CREATED':<25}  {'REVOKED':<25}  {'SITES':<20}  NAME")
    for t in tokens:
        revoked = t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else "-"
        created = t.created_at.isoformat(timespec="seconds")
        sites = ",".join(t.sites) if t.sites else "*"
        click.echo(
            f"{t.token_id:>6}  {t.role.value:<10}  {created:<25}  {revoked:<25}  {sites:<20}  {t.name or '-'}"
        )


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


@api.group()
def targets() -> None:
    """Station targets: ideal cycle times with effective dates (history kept; docs/metrics.md)."""


@targets.command("set")
@click.argument("station_id")
@click.option(
    "--cycle-time", "cycle_time", type=float, default=None, help="Ideal cycle time, seconds per unit."
)
@click.option("--rate", type=float, default=None, help="Target units per hour instead of a cycle time.")
@click.option("--sku", default=None, help="One product at the station (default: every SKU).")
@click.option("--from", "effective_from", default=None, help="ISO 8601 with a UTC offset (default: now).")
def targets_set(
    station_id: str, cycle_time: float | None, rate: float | None, sku: str | None, effective_from: str | None
) -> None:
    """Record a target change for STATION_ID, in force from --from on (recorded as set by 'cli')."""
    from datetime import UTC, datetime

    import psycopg
    from pydantic import ValidationError

    from api.routers.targets import TargetIn
    from api.settings import ApiSettings

    try:
        body = TargetIn.model_validate(
            {"ideal_cycle_time_s": cycle_time, "target_units_per_hour": rate, "sku": sku}
            | ({"effective_from": effective_from} if effective_from else {})
        )
    except ValidationError as exc:
        raise click.UsageError("; ".join(e["msg"] for e in exc.errors())) from None
    settings = ApiSettings()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM workstations WHERE station_id = %s", (station_id,)).fetchone() is None:
            raise click.ClickException(f"unknown station {station_id!r}")
        conn.execute(
            "INSERT INTO station_targets (station_id, sku, effective_from, ideal_cycle_time_s, set_by) "
            "VALUES (%s, %s, %s, %s, 'cli')",
            (station_id, body.sku or "", body.effective_from or datetime.now(UTC), body.cycle_time()),
        )
    click.echo(f"{station_id}: {body.cycle_time():g} s per unit from {body.effective_from or 'now'}")


@targets.command("show")
@click.argument("station_id")
@click.option("--sku", default=None, help="One product's targets.")
def targets_show(station_id: str, sku: str | None) -> None:
    """STATION_ID's target changes, oldest first; '*' marks the one in force now."""
    from datetime import UTC, datetime

    import psycopg

    from api.settings import ApiSettings

    settings = ApiSettings()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT effective_from, ideal_cycle_time_s, set_by, set_at FROM station_targets "
            "WHERE station_id = %s AND sku = %s ORDER BY effective_from, target_id",
            (station_id, sku or ""),
        ).fetchall()
    if not rows:
        raise click.ClickException(f"no targets for {station_id!r}" + (f" sku {sku!r}" if sku else ""))
    now = datetime.now(UTC)
    current = max((i for i, r in enumerate(rows) if r[0] <= now), default=None)
    click.echo(f"   {'EFFECTIVE FROM':<25}  {'S/UNIT':>9}  {'UNITS/H':>9}  SET BY  SET AT")
    for i, (at, ict, by, set_at) in enumerate(rows):
        mark = "*" if i == current else " "
        click.echo(
            f"{mark}  {at.isoformat(timespec='seconds'):<25}  {ict:>9g}  {3600 / ict:>9.4g}  {by:<6}  "
            f"{set_at.isoformat(timespec='seconds')}"
        )
