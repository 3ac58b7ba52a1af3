"""Scheduled shift reports: made once at a shift's end, emailed with the PDF to a real SMTP server
(aiosmtpd), the PDF's figures equal to the API's; recipients per site over the API; dead letters."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from api.app import create_app
from api.metrics.calendar import occurrences
from api.security import Role, create_token
from api.settings import ApiSettings, SiteCalendar
from api.shift_report.content import cell
from api.shift_report.schedule import ReportScheduler, ReportSender, due
from devstack.system import free_port
from takt.store.rollups import refresh_all
from tests.alerts.conftest import SmtpSink, smtp  # noqa: F401 - the fixture
from tests.api.conftest import ADMIN

# Times are computed from now (the scheduler's clock is handed the same instant).
pytestmark = pytest.mark.wallclock

SITE = "site-r"
RECIPIENTS = ["lead@plant.example", "night@plant.example"]
FIGURES = ("target_units", "availability_percentage", "performance_percentage")
FIGURES += ("quality_percentage", "oee_percentage")


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


class Shift:
    """A shift 'early' that ended an hour ago and lasted two hours, with a 10-minute break."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)
        self.end = _minute(self.now) - timedelta(hours=1)
        self.start = self.end - timedelta(hours=2)
        self.brk = self.start + timedelta(minutes=60)

    def calendar(self) -> dict[str, SiteCalendar]:
        t = lambda x: x.time().isoformat()  # noqa: E731
        brk = {"start": t(self.brk), "end": t(self.brk + timedelta(minutes=10))}
        shift = {"name": "early", "start": t(self.start), "end": t(self.end), "breaks": [brk]}
        return {SITE: SiteCalendar.model_validate({"timezone": "UTC", "shifts": [shift]})}

    def at(self, minutes: float) -> datetime:
        return self.start + timedelta(minutes=minutes)


def _state(at: datetime, station: str, kind: str, seconds: float) -> dict[str, Any]:
    return {"timestamp": at.isoformat(), "worker_id": f"w-{station}", "station_id": station,
            "event_type": kind, "confidence": 0.9, "duration_s": seconds, "site_id": SITE}  # fmt: skip


def _units(at: datetime, station: str, n: int) -> dict[str, Any]:
    return {"timestamp": at.isoformat(), "worker_id": f"w-{station}", "station_id": station,
            "event_type": "product_count", "confidence": 0.9, "count": n, "site_id": SITE}  # fmt: skip


@pytest.fixture
def shift() -> Shift:
    return Shift()


@pytest.fixture
def report_settings(settings: ApiSettings, shift: Shift, smtp: SmtpSink) -> ApiSettings:  # noqa: F811
    return settings.model_copy(
        update={
            "calendars": shift.calendar(),
            "report_interval_s": 0,  # rounds are driven by the test, with its clock
            "report_delay_s": 0,
            "report_catchup_hours": 2,
            "alert_interval_s": 0,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_from": "takt@plant.example",
            "alert_retry_initial_s": 0.01,
        }
    )


@pytest.fixture
def rclient(report_settings: ApiSettings) -> Iterator[TestClient]:
    with TestClient(create_app(report_settings), headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        yield c


def _scenario(client: TestClient, settings: ApiSettings, shift: Shift) -> None:
    events = [
        _state(shift.at(0), "st-1", "working", 50 * 60),
        _state(shift.at(50), "st-1", "idle", 10 * 60),
        _state(shift.at(70), "st-1", "working", 40 * 60),
        _state(shift.at(0), "st-2", "working", 100 * 60),
    ]
    events += [_units(shift.at(m), "st-1", 3) for m in range(5, 120, 10)]
    events += [_units(shift.at(m), "st-2", 2) for m in range(5, 120, 15)]
    r = client.post("/api/events/batch", json=events)
    assert r.status_code == 200 and r.json()["success_count"] == len(events), r.text
    before = (shift.start - timedelta(days=1)).isoformat()
    for station, cycle in (("st-1", 150), ("st-2", 300)):
        body = {"ideal_cycle_time_s": cycle, "effective_from": before}
        assert client.put(f"/api/v1/targets/stations/{station}", json=body).status_code == 200
    line = {"site_id": SITE, "stations": ["st-1", "st-2"]}
    assert client.put("/api/v1/lines/l1", json=line).status_code == 200
    with psycopg.connect(settings.database_url) as conn:
        refresh_all(conn, max_gap_s=settings.max_state_gap_s)


def _pdf_lines(data: bytes) -> list[str]:
    reader = PdfReader(io.BytesIO(data))
    return [line for page in reader.pages for line in page.extract_text().splitlines()]


def _attachment(msg: Message) -> tuple[str, bytes]:
    parts = [p for p in msg.walk() if p.get_content_type() == "application/pdf"]
    assert len(parts) == 1
    payload = parts[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    return str(parts[0].get_filename()), payload


def test_due_finds_each_shift_end_once_whatever_the_round_spacing() -> None:
    cal = SiteCalendar.model_validate(
        {"timezone": "Europe/Berlin", "shifts": [{"name": "n", "start": "22:00", "end": "06:00"}]}
    )
    now = datetime.now(UTC)
    # Rounds every 7 minutes over three days see each night shift's end exactly once.
    ends: list[datetime] = []
    at = now
    while at < now + timedelta(days=3):
        step = timedelta(minutes=7)
        ends += [e for _n, _s, e in occurrences(cal, at, at + step)]
        at += step
    assert len(ends) == len(set(ends)) == 3
    assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(ends))
    assert all((e - s) == timedelta(hours=8) for _n, s, e in occurrences(cal, now, now + timedelta(days=3)))
    # Reports wait the delay, and nothing older than the catch-up is due.
    first = ends[0]
    assert due({"x": cal}, first + timedelta(seconds=59), timedelta(minutes=1), timedelta(hours=1)) == []
    [d] = due({"x": cal}, first + timedelta(minutes=1), timedelta(minutes=1), timedelta(hours=1))
    assert (d.site_id, d.shift, d.end) == ("x", "n", first)
    assert due({"x": cal}, first + timedelta(hours=2), timedelta(minutes=1), timedelta(hours=1)) == []


def test_recipients_per_site_by_role(rclient: TestClient, report_settings: ApiSettings) -> None:
    put = rclient.put(f"/api/v1/reports/recipients/{SITE}", json={"emails": [*RECIPIENTS, RECIPIENTS[0]]})
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["scheduled"] is False  # report_interval_s = 0 here: no schedule runs
    assert body["shifts"] == ["early"]
    assert [r["email"] for r in body["recipients"]] == RECIPIENTS
    assert {r["added_by"] for r in body["recipients"]} == {"admin-token"}  # who: the token
    for bad in (["no-at-sign"], ["a@b", "<x>@y"], "a@b"):
        assert rclient.put(f"/api/v1/reports/recipients/{SITE}", json={"emails": bad}).status_code == 422
    with psycopg.connect(report_settings.database_url, autocommit=True) as conn:
        viewer = create_token(conn, Role.VIEWER)
        supervisor = create_token(conn, Role.SUPERVISOR)
        elsewhere = create_token(conn, Role.SUPERVISOR, sites=["other-site"])
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    assert rclient.get("/api/v1/reports/recipients", headers=as_viewer).status_code == 403
    r = rclient.put(f"/api/v1/reports/recipients/{SITE}", json={"emails": []}, headers=as_viewer)
    assert r.status_code == 403
    r = rclient.put(
        f"/api/v1/reports/recipients/{SITE}",
        json={"emails": RECIPIENTS[1:]},
        headers={"Authorization": f"Bearer {supervisor}"},
    )
    assert [x["email"] for x in r.json()["recipients"]] == RECIPIENTS[1:]
    listed = rclient.get("/api/v1/reports/recipients").json()
    assert [(x["site_id"], [e["email"] for e in x["recipients"]]) for x in listed] == [(SITE, RECIPIENTS[1:])]
    other = {"Authorization": f"Bearer {elsewhere}"}
    assert rclient.get("/api/v1/reports/recipients", headers=other).json() == []
    r = rclient.put(f"/api/v1/reports/recipients/{SITE}", json={"emails": []}, headers=other)
    assert r.status_code == 404


def test_report_made_once_at_shift_end_and_its_pdf_holds_the_apis_figures(
    rclient: TestClient,
    report_settings: ApiSettings,
    shift: Shift,
    smtp: SmtpSink,  # noqa: F811
) -> None:
    _scenario(rclient, report_settings, shift)
    assert rclient.put(f"/api/v1/reports/recipients/{SITE}", json={"emails": RECIPIENTS}).status_code == 200
    dsn = report_settings.database_url
    scheduler = ReportScheduler(report_settings, clock=lambda: shift.now)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Just before the end (the shift is not over): nothing is due.
        ReportScheduler(report_settings, clock=lambda: shift.end - timedelta(seconds=1)).run_round(conn)
        assert conn.execute("SELECT count(*) FROM shift_reports").fetchone() == (0,)
        scheduler.run_round(conn)
        # Another round, a second process's scheduler, a restarted one: nothing new.
        scheduler.run_round(conn)
        ReportScheduler(report_settings, clock=lambda: shift.now + timedelta(minutes=5)).run_round(conn)
        assert scheduler.made == 1
        reports = conn.execute("SELECT shift, shift_start, shift_end FROM shift_reports").fetchall()
        assert reports == [("early", shift.start, shift.end)]
        sender = ReportSender(report_settings)
        while sender.send_one(conn):
            pass
        assert not ReportSender(report_settings).send_one(conn)
        statuses = conn.execute(
            "SELECT recipient, status, attempts FROM shift_report_deliveries ORDER BY recipient"
        ).fetchall()
    assert statuses == [(e, "sent", 1) for e in RECIPIENTS]
    assert sorted(r for rs in smtp.recipients for r in rs) == RECIPIENTS and len(smtp.messages) == 2
    msg = smtp.messages[0]
    day = shift.start.date().isoformat()
    assert msg["Subject"] == f"[Takt] Shift report {SITE}, shift early, {day}"
    assert msg["From"] == "takt@plant.example"
    assert msg["Message-ID"] != smtp.messages[1]["Message-ID"]
    name, pdf = _attachment(msg)
    assert name == f"shift-report-{SITE}-early-{day}.pdf" and pdf.startswith(b"%PDF")
    lines = _pdf_lines(pdf)

    # The API's figures for the same shift, read now.
    q = {"from": shift.start.isoformat(), "to": shift.end.isoformat(), "site_id": SITE, "shift": "early"}
    api = {s["station_id"]: s for s in rclient.get("/api/v1/metrics/workstations", params=q).json()}
    for station in ("st-1", "st-2"):
        a = api[station]
        expected = [station, cell(a["total_units_produced"])]
        expected += [cell(a[k]) for k in FIGURES]
        row = next(line for line in lines if line.startswith(station + " "))
        assert row.split(" ") == expected, (row, expected)
    # 12 counts of 3, less the one made in the planned break (minutes 60-70: not counted).
    assert api["st-1"]["total_units_produced"] == 33 and api["st-1"]["target_units"] is not None
    factory = rclient.get("/api/v1/metrics/factory", params=q).json()
    t = factory["targets"]
    site_row = [cell(factory["total_production_count"])]
    site_row += [cell(t[k]) for k in (*FIGURES, "planned_production_hours")]
    site_row.append(cell(factory["planned_break_hours"]))
    assert " ".join(site_row) in lines, lines[:12]
    board = rclient.get("/api/v1/metrics/hour-by-hour", params={**q, "line_id": "l1"}).json()
    at = lines.index("Hour by hour: line l1 (station st-2)") + 2  # caption, head, then the hours
    for h, line in zip(board["hours"], lines[at:], strict=False):
        expected = [cell(h["target_units"]), cell(h["actual_units"]), cell(h["cumulative_gap"])]
        assert line.split(" ")[-3:] == expected, (line, h)
    assert f"Shift report: {SITE}, shift early" in lines[0]
    assert any(line.startswith("Gateways") for line in lines)
    # The stored report is the one mailed; the HTML body shows the same figures.
    listed = rclient.get("/api/v1/reports/scheduled", params={"site_id": SITE}).json()
    assert [(r["shift"], [d["status"] for d in r["deliveries"]]) for r in listed] == [
        ("early", ["sent", "sent"])
    ]
    stored = rclient.get(f"/api/v1/reports/scheduled/{listed[0]['report_id']}", params={"format": "pdf"})
    assert stored.content == pdf
    html = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_payload(decode=True)
    assert isinstance(html, bytes)
    assert f"<td>st-1</td><td>{cell(api['st-1']['total_units_produced'])}</td>" in html.decode()
    # On demand, the same report as a PDF.
    on_demand = rclient.get("/api/v1/reports/shift", params={**q, "format": "pdf"})
    assert on_demand.headers["content-type"] == "application/pdf"
    assert _pdf_lines(on_demand.content)[2:] == lines[2:]


def test_unreachable_smtp_server_dead_letters_with_the_reason(settings: ApiSettings, shift: Shift) -> None:
    s = settings.model_copy(
        update={
            "calendars": shift.calendar(),
            "report_interval_s": 0,
            "report_delay_s": 0,
            "report_catchup_hours": 2,
            "smtp_host": "127.0.0.1",
            "smtp_port": free_port(),  # nobody listens
            "alert_tries": 2,
            "alert_retry_initial_s": 0.01,
        }
    )
    with psycopg.connect(s.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO report_recipients (site_id, email, added_by) VALUES (%s, 'x@plant.example', 't')",
            (SITE,),
        )
        ReportScheduler(s, clock=lambda: shift.now).run_round(conn)
        sender = ReportSender(s)
        assert sender.send_one(conn) and not sender.send_one(conn)
        status, attempts, reason = conn.execute(
            "SELECT status, attempts, reason FROM shift_report_deliveries"
        ).fetchone() or (None, None, None)
    assert (status, attempts, sender.dead) == ("dead", 2, 1)
    assert reason is not None and reason.startswith("after 2 tries:") and "refused" in reason.lower()


def test_a_delay_beyond_the_catch_up_is_refused_at_start(settings: ApiSettings) -> None:
    with pytest.raises(ValueError, match="TAKT_REPORT_CATCHUP_HOURS must reach further back"):
        ApiSettings(database_url=settings.database_url, report_delay_s=7200, report_catchup_hours=1)
