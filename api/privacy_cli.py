"""``takt privacy``: resolve a pseudonym, erase a worker, apply retention, write the privacy sheet.

Reads TAKT_DATABASE_URL and TAKT_PRIVACY (docs/privacy.md).
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click


@click.group()
def privacy() -> None:
    """Privacy tools for admins (docs/privacy.md)."""


@privacy.command("resolve")
@click.argument("pseudonym_id")
@click.option("--site", "site_id", required=True, help="The site whose key made the pseudonym.")
@click.option(
    "--key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The site's pseudonym key (the gateways' privacy.key_file).",
)
@click.option(
    "--config",
    "edge_config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An edge config whose roster and badges give the candidate ids.",
)
@click.option("--candidate", "candidates", multiple=True, help="A candidate roster id (repeatable).")
def resolve_command(
    pseudonym_id: str, site_id: str, key_file: Path, edge_config: Path | None, candidates: tuple[str, ...]
) -> None:
    """Print the one roster id whose pseudonym is PSEUDONYM_ID (exit 1 if none matches).

    Only the key's holder can do this; the cloud never has the key."""
    from takt.privacy import resolve

    ids = set(candidates)
    if edge_config is not None:
        import yaml

        doc = yaml.safe_load(edge_config.read_text()) or {}
        ids |= {str(r["worker_id"]) for r in doc.get("roster", [])}
        ids |= {str(w) for w in (doc.get("badges", {}) or {}).get("markers", {}).values()}
    if not ids:
        raise click.UsageError("give candidate ids: --config edge.yaml or --candidate ID")
    found = resolve(key_file.read_bytes(), site_id, pseudonym_id, sorted(ids))
    if found is None:
        raise click.ClickException(f"no candidate has the pseudonym {pseudonym_id!r} at {site_id!r}")
    click.echo(found)


@privacy.command("erase")
@click.option(
    "--worker", "worker_id", required=True, help="The worker id as stored (a pseudonym at such sites)."
)
@click.option("--site", "site_id", default=None, help="Only this site's data (default: every site).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase_command(worker_id: str, site_id: str | None, yes: bool) -> None:
    """Remove a worker's events and everything derived from them; the audit records the erasure."""
    import psycopg

    from api.settings import ApiSettings
    from takt.store.privacy import erase_worker
    from takt.store.rollups import refresh_all

    where = f"at {site_id}" if site_id else "at every site"
    if not yes:
        click.confirm(f"erase every event of {worker_id!r} {where}?", abort=True)
    settings = ApiSettings()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        try:
            erased = erase_worker(conn, worker_id, site_id=site_id, actor=f"cli:{getpass.getuser()}")
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        rebuilt = refresh_all(conn, max_gap_s=settings.max_state_gap_s)
    click.echo(
        f"erased {erased.events} events and {erased.dead_letters} dead letters of {worker_id!r} {where}"
        + ("; roster entry removed" if erased.roster_entry else "")
        + f"; rollups rebuilt ({rebuilt} invalidations)"
    )


@privacy.command("retention")
def retention_command() -> None:
    """Apply TAKT_PRIVACY's retention now: each site's raw events and the dead letters older than set.

    Run it daily (cron or a systemd timer); rollups are kept."""
    import psycopg

    from api.settings import ApiSettings
    from takt.store.privacy import delete_old_dead_letters, delete_old_events

    settings = ApiSettings()
    now = datetime.now(UTC)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for site_id, policy in sorted(settings.privacy.items()):
            if policy.retention_days is not None:
                before = now - timedelta(days=policy.retention_days)
                n = delete_old_events(conn, site_id, before)
                click.echo(f"{site_id}: removed {n} events before {before.isoformat(timespec='seconds')}")
        # Dead letters often cannot name their site: the shortest retention set applies to all.
        days = [
            p.dead_letter_retention_days for p in settings.privacy.values() if p.dead_letter_retention_days
        ]
        if days:
            before = now - timedelta(days=min(days))
            n = delete_old_dead_letters(conn, before)
            click.echo(f"dead letters: removed {n} before {before.isoformat(timespec='seconds')}")


@privacy.command("sheet")
@click.option("--site", "site_id", required=True)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Markdown file (default: stdout)."
)
@click.option("--pdf", type=click.Path(dir_okay=False, path_type=Path), help="Also a PDF (needs takt[pdf]).")
def sheet_command(site_id: str, out: Path | None, pdf: Path | None) -> None:
    """The privacy sheet of a site from the current configuration: what is measured, who sees what,
    retention, where the data lives."""
    import psycopg

    from api.privacy_sheet import markdown_to_pdf, sheet_markdown
    from api.security import list_tokens
    from api.settings import ApiSettings

    settings = ApiSettings()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        tokens = list_tokens(conn)
    text = sheet_markdown(settings, site_id, tokens, generated=datetime.now(UTC))
    if out is None:
        click.echo(text)
    else:
        out.write_text(text)
    if pdf is not None:
        try:
            markdown_to_pdf(text, pdf)
        except ImportError:
            raise click.ClickException("PDF output needs fpdf2: pip install 'takt[pdf]'") from None
