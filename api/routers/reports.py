"""Shift reports (docs/metrics.md, "Shift report"): on demand as HTML or PDF, their recipients per site,
and the reports made at each shift end (api/shift_report/schedule.py)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.access import Reader
from api.deps import Conn, Settings, Supervisor
from api.metrics.engine import site_list
from api.routers.metrics import ScopeDep
from api.shift_report import content

router = APIRouter(tags=["reports"])

SitePath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
_EMAIL = re.compile(r"^[^@\s<>,;\"()\[\]]+@[^@\s<>,;\"()\[\]]+$")


def _email(value: str) -> str:
    value = value.strip().lower()
    if not _EMAIL.match(value):
        raise ValueError(f"not an email address (user@domain): {value!r}")
    return value


Email = Annotated[
    str,
    Field(min_length=3, max_length=254, description="An email address (user@domain)."),
    AfterValidator(_email),
]
PDF = "application/pdf"


def _wants_pdf(format_: str | None, accept: str | None) -> bool:
    if format_ is not None:
        return format_ == "pdf"
    return accept is not None and PDF in accept and "text/html" not in accept


@router.get(
    "/reports/shift",
    response_class=Response,
    responses={200: {"content": {"text/html": {}, PDF: {}}, "description": "The report as HTML or PDF."}},
)
def shift_report(
    conn: Conn,
    s: ScopeDep,
    _: Supervisor,
    request: Request,
    format_: Annotated[
        Literal["html", "pdf"] | None,
        Query(alias="format", description="html (default) or pdf; or Accept: application/pdf"),
    ] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """The shift report for a site and window (``shift``, ``from``, ``to``, ``site_id``), HTML or PDF.

    Holds the target and OEE figures per station and for the site (with planned production and break
    hours), each line's hour-by-hour board, the top five losses and the gateways' health (state, last
    seen, backlog, events received in the window). Supervisor or admin: gateway health is theirs.
    """
    report = content.build(conn, s, shift=request.query_params.get("shift"))
    if _wants_pdf(format_, accept):
        return Response(
            content.pdf(report),
            media_type=PDF,
            headers={"Content-Disposition": 'attachment; filename="shift-report.pdf"'},
        )
    return Response(content.html(report), media_type="text/html; charset=utf-8")


class RecipientsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    emails: list[Email] = Field(
        max_length=100, description="Every recipient of the site (replaces the list)."
    )


class Recipient(BaseModel):
    email: str
    added_by: str
    added_at: datetime


class SiteRecipients(BaseModel):
    site_id: str
    scheduled: bool = Field(
        description="Whether the site has a shift calendar (TAKT_CALENDARS), so reports go out at each "
        "shift end; without one, none are made."
    )
    shifts: list[str] = Field(description="The calendar's shifts, each one's report mailed at its end.")
    recipients: list[Recipient]


def _site_recipients(conn: Conn, settings: Settings, site_id: str) -> SiteRecipients:
    rows = conn.execute(
        "SELECT email, added_by, added_at FROM report_recipients WHERE site_id = %s ORDER BY email",
        (site_id,),
    ).fetchall()
    calendar = settings.calendars.get(site_id)
    shifts = [x.name for x in calendar.shifts] if calendar else []
    return SiteRecipients(
        site_id=site_id,
        scheduled=bool(shifts) and settings.report_interval_s > 0,
        shifts=shifts,
        recipients=[Recipient(email=e, added_by=b, added_at=a) for e, b, a in rows],
    )


@router.get("/reports/recipients")
def recipients(
    conn: Conn,
    settings: Settings,
    access: Reader,
    _: Supervisor,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[SiteRecipients]:
    """Who gets each site's shift report by email: every site with a calendar or recipients (within the
    token's sites), or ``site_id`` only."""
    chosen = access.site(site_id)
    if isinstance(chosen, str):
        return [_site_recipients(conn, settings, chosen)]
    listed = {r[0] for r in conn.execute("SELECT DISTINCT site_id FROM report_recipients").fetchall()}
    listed |= set(settings.calendars)
    return [_site_recipients(conn, settings, x) for x in sorted(listed) if access.allows(x)]


@router.put("/reports/recipients/{site_id}")
def set_recipients(
    site_id: SitePath, body: RecipientsIn, conn: Conn, settings: Settings, access: Reader, _: Supervisor
) -> SiteRecipients:
    """Replace the site's recipients (supervisor or admin). Reports already made keep their own."""
    access.site(site_id)
    emails = sorted(set(body.emails))
    with conn.transaction():
        conn.execute(
            "DELETE FROM report_recipients WHERE site_id = %s AND NOT (email = ANY(%s))", (site_id, emails)
        )
        conn.execute(
            "INSERT INTO report_recipients (site_id, email, added_by) "
            "SELECT %s, e, %s FROM unnest(%s::text[]) e ON CONFLICT DO NOTHING",
            (site_id, access.caller.actor, emails),
        )
    return _site_recipients(conn, settings, site_id)


class Delivery(BaseModel):
    recipient: str
    status: Literal["pending", "sent", "dead"]
    attempts: int
    reason: str | None = Field(description="Why a dead delivery failed.")
    sent_at: datetime | None


class ScheduledReport(BaseModel):
    report_id: int
    site_id: str
    shift: str
    shift_start: datetime
    shift_end: datetime
    local_day: date
    subject: str
    created_at: datetime
    deliveries: list[Delivery]


@router.get("/reports/scheduled")
def scheduled(
    conn: Conn,
    access: Reader,
    _: Supervisor,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[ScheduledReport]:
    """The reports made at shift ends, newest first, with each recipient's delivery status."""
    sites = site_list(access.site(site_id))
    rows = conn.execute(
        "SELECT report_id, site_id, shift, shift_start, shift_end, local_day, subject, created_at "
        "FROM shift_reports WHERE %(s)s::text[] IS NULL OR site_id = ANY(%(s)s) "
        "ORDER BY shift_end DESC, report_id DESC LIMIT %(n)s",
        {"s": sites, "n": limit},
    ).fetchall()
    ids = [r[0] for r in rows]
    by_report: dict[int, list[Delivery]] = {i: [] for i in ids}
    for rid, recipient, status, attempts, reason, sent_at in conn.execute(
        "SELECT report_id, recipient, status, attempts, reason, sent_at FROM shift_report_deliveries "
        "WHERE report_id = ANY(%s) ORDER BY recipient",
        (ids,),
    ).fetchall():
        by_report[rid].append(
            Delivery(recipient=recipient, status=status, attempts=attempts, reason=reason, sent_at=sent_at)
        )
    names = (
        "report_id", "site_id", "shift", "shift_start", "shift_end", "local_day", "subject", "created_at"
    )  # fmt: skip
    out: list[ScheduledReport] = []
    for r in rows:
        fields: dict[str, Any] = dict(zip(names, r, strict=True))
        out.append(ScheduledReport(**fields, deliveries=by_report[r[0]]))
    return out


@router.get(
    "/reports/scheduled/{report_id}",
    response_class=Response,
    responses={200: {"content": {"text/html": {}, PDF: {}}, "description": "The stored report."}},
)
def scheduled_report(
    report_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    conn: Conn,
    access: Reader,
    _: Supervisor,
    format_: Annotated[Literal["html", "pdf"], Query(alias="format")] = "html",
) -> Response:
    """A report made at a shift end, exactly as it was emailed (HTML, or ``?format=pdf``)."""
    row = conn.execute(
        "SELECT site_id, html, pdf, local_day, shift FROM shift_reports WHERE report_id = %s", (report_id,)
    ).fetchone()
    if row is None or not access.allows(row[0]):
        raise HTTPException(404, f"unknown report {report_id}")
    if format_ == "pdf":
        name = re.sub(r"[^A-Za-z0-9._-]", "_", f"shift-report-{row[0]}-{row[4]}-{row[3].isoformat()}.pdf")
        return Response(
            bytes(row[2]), media_type=PDF, headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )
    return Response(row[1], media_type="text/html; charset=utf-8")
