"""Real `takt api` processes: two of them, and a restart, email a shift's report once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from takt.store.db import upgrade
from tests.alerts.conftest import SmtpSink, smtp, wait_for  # noqa: F401 - the fixture
from tests.alerts.test_processes import Api

# The shift ends half a minute from now, by the wall clock of the API processes and the database.
pytestmark = pytest.mark.wallclock

SITE = "site-p"
RECIPIENT = "supervisor@plant.example"


@pytest.fixture
def dsn(fresh_database: str) -> str:
    upgrade(fresh_database)
    return fresh_database


@pytest.fixture
def apis() -> Iterator[list[Api]]:
    started: list[Api] = []
    yield started
    for api in started:
        if api.proc.poll() is None:
            api.stop()


def _env(smtp_port: int, end: datetime) -> dict[str, str]:
    start = end - timedelta(hours=1)
    shift = {"name": "late", "start": start.time().isoformat(), "end": end.time().isoformat()}
    return {
        "TAKT_CALENDARS": json.dumps({SITE: {"timezone": "UTC", "shifts": [shift]}}),
        "TAKT_REPORT_INTERVAL_S": "0.2",
        "TAKT_REPORT_SEND_INTERVAL_S": "0.2",
        "TAKT_REPORT_DELAY_S": "0",
        "TAKT_REPORT_CATCHUP_HOURS": "1",
        "TAKT_ALERT_INTERVAL_S": "0",
        "TAKT_SMTP_HOST": "127.0.0.1",
        "TAKT_SMTP_PORT": str(smtp_port),
    }


def _rows(dsn: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def _rounds_pass(dsn: str, seconds: float) -> None:
    """Let the schedulers run many rounds (0.2 s apart), measured on the database clock."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT pg_sleep(%s)", (seconds,))


def test_two_processes_and_a_restart_email_one_report_per_shift(
    dsn: str,
    smtp: SmtpSink,  # noqa: F811
    apis: list[Api],
) -> None:
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO report_recipients (site_id, email, added_by) VALUES (%s, %s, 'test')",
            (SITE, RECIPIENT),
        )
    env = _env(smtp.port, end)
    apis += [Api(dsn, env), Api(dsn, env)]
    # Both look every 0.2 s; one holds the round's advisory lock, the other skips it.
    wait_for(lambda: smtp.messages, 90, "the shift report email")
    _rounds_pass(dsn, 3)
    assert len(smtp.messages) == 1 and smtp.recipients == [[RECIPIENT]]
    day = (end - timedelta(hours=1)).date().isoformat()
    assert smtp.messages[0]["Subject"] == f"[Takt] Shift report {SITE}, shift late, {day}"
    assert _rows(dsn, "SELECT shift, shift_end FROM shift_reports") == [("late", end)]
    # Not before the shift ended, by the database's clock (the one every API process judges by).
    assert _rows(dsn, "SELECT created_at >= shift_end FROM shift_reports") == [(True,)]
    # A restart: the new process sees the report made and the email sent.
    apis[0].stop()
    apis.append(Api(dsn, env))
    _rounds_pass(dsn, 3)
    assert len(smtp.messages) == 1
    assert _rows(dsn, "SELECT status, attempts FROM shift_report_deliveries") == [("sent", 1)]
    assert len(_rows(dsn, "SELECT 1 FROM shift_reports")) == 1
