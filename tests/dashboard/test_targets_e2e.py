"""Target vs actual on the cards and the workstation table, and the shift report box, in Chromium.

What a person reads (the text, and the tooltip of a missing figure) is compared with the API's
answer to the page's own query; the downloaded PDF's figures with the API's too.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from pypdf import PdfReader

from tests.dashboard.conftest import Server
from tests.dashboard.test_e2e import CHROMIUM, api_get, browser, browser_page, settled, shot, sign_in
from tests.dashboard.test_shift_board import load_recent, show_day

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared with test_e2e

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium package is not installed"),
    pytest.mark.wallclock,
]

FIGURES = ("target_units", "availability_percentage", "performance_percentage")
# Day-long shift (end <= start: it crosses midnight), so planned time is the whole day.
ALL_DAY = {"site-1": {"timezone": "UTC", "shifts": [{"name": "all-day", "start": "00:00", "end": "00:00"}]}}


@pytest.fixture
def page(browser: Browser, dash_server: Server) -> Iterator[Page]:
    with browser_page(browser) as pg:
        yield pg


def _text(value: Any, percent: bool = False) -> str:
    """How the page writes a figure (en-US, one decimal); a missing one reads '—'."""
    if value is None:
        return "—"
    return f"{value:,.1f}" + (" %" if percent else "")


def test_cards_and_workstation_table_show_target_vs_actual(page: Page, dash_server: Server) -> None:
    day = load_recent(dash_server)
    sign_in(page, dash_server)
    q = show_day(page, day)
    settled(dash_server)
    factory = api_get(dash_server, "/api/metrics/factory" + q)
    t = factory["targets"]
    assert t is not None and t["target_units"] > 0  # st-a has a target
    for key in FIGURES:
        value = page.locator(f'[data-metric="{key}"] .value')
        expect(value).to_have_text(_text(t[key], percent=key != "target_units"))
    note = page.locator('[data-metric="target_units"] .note')
    expect(note).to_have_text(f"{t['units_in_planned_time']:,} made against it")
    units = page.locator('[data-metric="total_production_count"] .value')
    expect(units).to_have_text(f"{factory['total_production_count']:,}")

    stations = {s["station_id"]: s for s in api_get(dash_server, "/api/metrics/workstations" + q)}
    assert stations["st-a"]["target_units"] is not None and stations["st-b"]["target_units"] is None
    for sid, s in stations.items():
        row = page.locator(f'#stations tbody tr[data-id="{sid}"]')
        expect(row.locator('[data-col="total_units_produced"]')).to_have_text(
            f"{s['total_units_produced']:,}"
        )
        for key in FIGURES:
            cell = row.locator(f'[data-col="{key}"]')
            expect(cell).to_have_text(_text(s[key]))
            if s[key] is None:
                expect(cell).to_have_attribute("title", "no target set")
            else:
                expect(cell).not_to_have_attribute("title", "no target set")
    headers = page.locator("#stations thead th")
    expect(headers).to_contain_text(["Units", "Target units", "Availability %", "Performance %"])
    shot(page, "targets-cards-table")

    # One station chosen: its cards, the missing ones saying why.
    page.locator("#f-station").select_option("st-b")
    expect(page.locator('[data-metric="occupancy_time_hours"] .label')).to_contain_text("st-b")
    missing = page.locator('[data-metric="target_units"] .value')
    expect(missing).to_have_text("—")
    expect(missing).to_have_attribute("title", "no target set")
    expect(page.locator('[data-metric="performance_percentage"] .value')).to_have_attribute(
        "title", "no target set"
    )
    expect(page.locator('[data-metric="availability_percentage"] .value')).to_have_text(
        _text(stations["st-b"]["availability_percentage"], percent=True)
    )
    shot(page, "targets-station-cards", full_page=False)


# No shared answers: the API's figures from after the download must be computed after it,
# not replayed from the response cache (a 1 s TTL outlasts a fast download).
@pytest.mark.dash_settings(calendars=ALL_DAY, report_interval_s=0, response_cache_ttl_s=0)
def test_shift_report_box_lists_recipients_and_downloads_the_pdf(page: Page, dash_server: Server) -> None:
    day = load_recent(dash_server)
    sign_in(page, dash_server)
    q = show_day(page, day)
    page.get_by_label("Line or station").select_option(label="Line: X")
    box = page.locator("#shift-report")
    expect(box.locator('#report-recipients li[data-site="site-1"]')).to_contain_text("site-1: nobody yet")
    page.get_by_label("Recipients (comma-separated)").fill("lead@plant.example, night@plant.example")
    page.get_by_role("button", name="Save recipients").click()
    expect(page.locator("#report-status")).to_have_text(
        "Recipients of site-1: lead@plant.example, night@plant.example."
    )
    [site] = api_get(dash_server, "/api/v1/reports/recipients?site_id=site-1")
    assert [r["email"] for r in site["recipients"]] == ["lead@plant.example", "night@plant.example"]
    expect(box.locator('#report-recipients li[data-site="site-1"]')).to_contain_text(
        "site-1: lead@plant.example, night@plant.example"
    )
    # A bad address is refused with the API's reason, and nothing changes.
    page.get_by_label("Recipients (comma-separated)").fill("not-an-address")
    page.get_by_role("button", name="Save recipients").click()
    expect(page.locator("#report-status")).to_contain_text(
        "Recipients not saved: 422: invalid request "
        "(emails.0: Value error, not an email address (user@domain): 'not-an-address')"
    )
    [same] = api_get(dash_server, "/api/v1/reports/recipients?site_id=site-1")
    assert same["recipients"] == site["recipients"]
    shot(page, "shift-report-box")

    def st_a() -> dict[str, Any]:
        stations = api_get(dash_server, "/api/metrics/workstations" + q)
        return next(s for s in stations if s["station_id"] == "st-a")

    # Planned time runs up to now, so target units and availability move while the PDF is made:
    # each figure must lie between the API's answers from just before and just after it.
    before = st_a()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download PDF").click()
    path = info.value.path()
    after = st_a()
    lines = [x for p in PdfReader(io.BytesIO(path.read_bytes())).pages for x in p.extract_text().splitlines()]
    row = next(x for x in lines if x.startswith("st-a ")).split(" ")
    assert row[1] == f"{after['total_units_produced']:,}" == f"{before['total_units_produced']:,}"
    for text, key in zip(row[2:5], FIGURES, strict=True):
        low, high = sorted((before[key], after[key]))
        assert low - 0.05 <= float(text.replace(",", "")) <= high + 0.05, (key, text, low, high)
