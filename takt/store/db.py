"""Database access shared by the collector and the API: connections and schema checks.

Schema changes are Alembic migrations in ``takt/store/migrations``; services
call :func:`require_current_schema` at start so they never run on a schema
older (or newer) than their code, and :func:`require_metric_settings` so they
never extend rollups derived with other metric settings.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class SchemaError(RuntimeError):
    """The database schema is not the one this code was written for."""


def sqlalchemy_url(database_url: str) -> str:
    return "postgresql+psycopg://" + database_url.removeprefix("postgresql://")


def make_engine(database_url: str) -> Engine:
    return create_engine(sqlalchemy_url(database_url), pool_pre_ping=True)


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' must be escaped for ConfigParser; URL-encoded passwords contain it.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("postgresql://x@localhost/x")).get_current_head()
    assert head is not None
    return head


def current_revision(database_url: str) -> str | None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def require_current_schema(database_url: str) -> None:
    current, head = current_revision(database_url), head_revision()
    if current != head:
        raise SchemaError(
            f"database schema is at revision {current or 'none'}, this code needs {head}: "
            "run `takt db upgrade` first"
        )


class MetricSettingsError(SchemaError):
    """The stored rollups were derived with other metric settings than this service's."""


def require_metric_settings(database_url: str, *, max_gap_s: float) -> None:
    """Refuse to run with other metric settings than the stored durations and rollups were built with.

    A database that has none recorded yet (new, or upgraded to revision 0008)
    records these. Changing one on purpose: stop the services, run
    ``takt db rebuild`` with the new value (it re-derives every duration and
    rollup and records it), start them with it.
    """
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        conn.execute(
            "UPDATE rollup_meta SET max_state_gap_s = %s WHERE id = 1 AND max_state_gap_s IS NULL",
            (max_gap_s,),
        )
        row = conn.execute("SELECT max_state_gap_s FROM rollup_meta WHERE id = 1").fetchone()
    stored = None if row is None else row[0]
    if stored is not None and float(stored) != float(max_gap_s):
        raise MetricSettingsError(
            f"the stored durations and rollups were derived with TAKT_MAX_STATE_GAP_S={float(stored):g}, "
            f"this service has TAKT_MAX_STATE_GAP_S={float(max_gap_s):g}: start it with "
            f"TAKT_MAX_STATE_GAP_S={float(stored):g}, or, to change the definition on purpose, stop every "
            "collector and API, run `takt db rebuild` with the new value, then start them with it"
        )


def timescaledb_installed(conn: psycopg.Connection[object]) -> bool:
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return row is not None
