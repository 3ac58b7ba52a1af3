"""Shift reports on a schedule: made once at each shift end of each site's calendar, then emailed.

:class:`ReportScheduler` runs a round every ``TAKT_REPORT_INTERVAL_S`` in one
transaction holding a transaction-level advisory lock
(``pg_try_advisory_xact_lock``): of several API processes, one makes the
reports of a round and the others skip it. For every shift occurrence of
every site's calendar that ended ``TAKT_REPORT_DELAY_S`` ago or earlier (up to
``TAKT_REPORT_CATCHUP_HOURS`` back, so a restart or an outage catches up), it
builds the report (api/shift_report/content.py) and stores it with one
outbox row per recipient of the site, in that transaction. The unique key
(site, shift, start) backs the lock: whatever happens, a shift occurrence has
one report, and its recipients one email each.

:class:`ReportSender` claims one pending outbox row at a time
(``FOR UPDATE SKIP LOCKED``), emails the stored report (HTML body, PDF
attached) with retries (api.alerts.deliver.deliver) and marks the row
``sent``, or ``dead`` with the reason. A process killed between the SMTP
server's acceptance and the commit sends that email again after its restart
(at least once); its ``Message-ID`` is the same both times, so mail clients
show one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import psycopg

from api.access import Access
from api.alerts.deliver import OutboxSender, deliver, send_email
from api.metrics.calendar import local_day, occurrences
from api.routers.metrics import scope
from api.security import Caller, Role
from api.settings import ApiSettings, SiteCalendar
from api.shift_report import content
from takt.periodic import PeriodicDatabaseTask

logger = logging.getLogger(__name__)

# pg_advisory locks are keyed by one bigint; this one is "takt-rpt" in ASCII.
REPORT_LOCK = 0x74616B742D727074
SCHEDULER = Access(Caller(Role.ADMIN))


@dataclass(frozen=True, slots=True)
class Due:
    site_id: str
    shift: str
    start: datetime
    end: datetime


def due(
    calendars: Mapping[str, SiteCalendar], at: datetime, delay: timedelta, catchup: timedelta
) -> list[Due]:
    """Shift occurrences whose report is due at ``at``: ended between ``catchup`` and ``delay`` ago."""
    out = [
        Due(site, name, start, end)
        for site, calendar in sorted(calendars.items())
        for name, start, end in occurrences(calendar, at - catchup, at - delay)
    ]
    return sorted(out, key=lambda d: (d.end, d.site_id, d.shift))


def subject(d: Due, calendar: SiteCalendar) -> str:
    return f"[Takt] Shift report {d.site_id}, shift {d.shift}, {local_day(calendar, d.start).isoformat()}"


def make_report(conn: psycopg.Connection[Any], settings: ApiSettings, d: Due) -> int | None:
    """Build, store and queue the report of one shift occurrence; its id, or None when it exists already."""
    exists = conn.execute(
        "SELECT 1 FROM shift_reports WHERE site_id = %s AND shift = %s AND shift_start = %s",
        (d.site_id, d.shift, d.start),
    ).fetchone()
    if exists:
        return None
    calendar = settings.calendars[d.site_id]
    s = scope(conn, settings, SCHEDULER, d.start, d.end, d.site_id, d.shift)
    report = content.build(conn, s, shift=d.shift)
    row = conn.execute(
        "INSERT INTO shift_reports (site_id, shift, shift_start, shift_end, local_day, subject, html, pdf) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (site_id, shift, shift_start) DO NOTHING RETURNING report_id",
        (
            d.site_id,
            d.shift,
            d.start,
            d.end,
            local_day(calendar, d.start),
            subject(d, calendar),
            content.html(report),
            content.pdf(report),
        ),
    ).fetchone()
    if row is None:
        return None
    report_id = int(row[0])
    conn.execute(
        "INSERT INTO shift_report_deliveries (report_id, recipient) "
        "SELECT %s, email FROM report_recipients WHERE site_id = %s ORDER BY email",
        (report_id, d.site_id),
    )
    return report_id


def _db_now(conn: psycopg.Connection[Any]) -> datetime:
    """The database's clock: one clock for every API process (api.alerts.evaluate does the same)."""
    row = conn.execute("SELECT statement_timestamp()").fetchone()
    assert row is not None and isinstance(row[0], datetime)
    return row[0]


class ReportScheduler(PeriodicDatabaseTask):
    """Background thread of the API: makes the reports of ended shifts under the advisory lock."""

    def __init__(self, settings: ApiSettings, *, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__("shift-reports", settings.database_url, settings.report_interval_s, max_share=0.5)
        self.settings = settings
        self._clock = clock
        self.made = 0
        self.skipped = 0
        self.failed = 0

    def run_round(self, conn: psycopg.Connection[Any]) -> None:
        s = self.settings
        with conn.transaction():
            row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (REPORT_LOCK,)).fetchone()
            if not row or not row[0]:
                self.skipped += 1
                return
            at = self._clock() if self._clock else _db_now(conn)
            for d in due(
                s.calendars, at, timedelta(seconds=s.report_delay_s), timedelta(hours=s.report_catchup_hours)
            ):
                try:
                    # A report that fails (bad data) costs its own savepoint only; the next round retries it.
                    with conn.transaction():
                        report_id = make_report(conn, s, d)
                except (psycopg.Error, ValueError, KeyError, TypeError, ArithmeticError, RuntimeError):
                    self.failed += 1
                    logger.exception(
                        "shift report %s/%s from %s could not be made", d.site_id, d.shift, d.start
                    )
                    continue
                if report_id is not None:
                    self.made += 1
                    logger.info(
                        "shift report %d made: %s shift %s ended %s", report_id, d.site_id, d.shift, d.end
                    )


def message(settings: ApiSettings, row: Mapping[str, Any]) -> EmailMessage:
    """The email of one delivery: the report as the HTML body (and a plain-text part), the PDF attached."""
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = row["recipient"]
    msg["Subject"] = row["subject"]
    msg["X-Takt-Report"] = str(row["report_id"])
    domain = settings.smtp_from.rpartition("@")[2] or "takt.local"
    # The same id each time this delivery is sent (a resend after a crash shows as one mail).
    msg["Message-ID"] = f"<takt-shift-report-{row['report_id']}-{row['delivery_id']}@{domain}>"
    start, end = row["shift_start"], row["shift_end"]
    msg.set_content(
        f"{row['subject']}\n\nShift {row['shift']} at {row['site_id']}: {start.isoformat()} to "
        f"{end.isoformat()} (UTC).\nThe report is attached as a PDF and shown below in HTML mail readers.\n"
    )
    msg.add_alternative(row["html"], subtype="html")
    name = f"shift-report-{row['site_id']}-{row['shift']}-{row['local_day'].isoformat()}.pdf"
    msg.add_attachment(bytes(row["pdf"]), maintype="application", subtype="pdf", filename=name)
    return msg


class ReportSender(OutboxSender):
    """Background thread of the API: emails pending shift report deliveries, one row lock each."""

    def __init__(self, settings: ApiSettings, *, batch: int = 20) -> None:
        super().__init__(
            "shift-report-sender", settings.database_url, settings.report_send_interval_s, batch=batch
        )
        self.settings = settings

    def send_one(self, conn: psycopg.Connection[Any]) -> bool:
        """Claim, send and mark one pending delivery; False when none is waiting."""
        with conn.transaction():
            cur = conn.execute(
                "SELECT d.delivery_id, d.recipient, d.attempts, r.report_id, r.site_id, r.shift, "
                "r.shift_start, r.shift_end, r.local_day, r.subject, r.html, r.pdf "
                "FROM shift_report_deliveries d JOIN shift_reports r USING (report_id) "
                "WHERE d.status = 'pending' ORDER BY d.delivery_id LIMIT 1 FOR UPDATE OF d SKIP LOCKED"
            )
            found = cur.fetchone()
            if found is None:
                return False
            row = dict(zip([c.name for c in cur.description or []], found, strict=True))
            msg = message(self.settings, row)
            tries, failure = deliver(lambda: send_email(self.settings, msg), self.settings)
            attempts = int(row["attempts"]) + tries
            if failure is None:
                conn.execute(
                    "UPDATE shift_report_deliveries SET status = 'sent', attempts = %s, sent_at = now() "
                    "WHERE delivery_id = %s",
                    (attempts, row["delivery_id"]),
                )
                self.sent += 1
            else:
                logger.error("shift report delivery %d dead-lettered: %s", row["delivery_id"], failure)
                conn.execute(
                    "UPDATE shift_report_deliveries SET status = 'dead', attempts = %s, reason = %s "
                    "WHERE delivery_id = %s",
                    (attempts, failure[:2000], row["delivery_id"]),
                )
                self.dead += 1
        return True
