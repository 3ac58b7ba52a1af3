"""The shift panel in headless Chromium: hour-by-hour board, line view, loss Pareto and target editing.

Every number a person reads there is compared with the API's answer to the page's own query.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect

from takt.contract import Event
from takt.store.events import write_events
from tests.dashboard.conftest import ADMIN, Server
from tests.dashboard.test_e2e import CHROMIUM, api_get, browser, browser_page, loaded, settled, shot, sign_in

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared with test_e2e

UNITS = range(30)

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium package is not installed"),
    pytest.mark.wallclock,
]


@pytest.fixture
def page(browser: Browser, dash_server: Server) -> Iterator[Page]:
    with browser_page(browser) as pg:
        yield pg


def _put(server: Server, path: str, body: dict[str, Any]) -> None:
    r = httpx.put(server.url + path, json=body, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    assert r.status_code == 200, r.text


def recent_start(span: timedelta) -> datetime:
    """An hour's start whose ``[start, start + span)`` ended an hour ago or more, inside one UTC day.

    Just after midnight that day is yesterday: data in the future would count only up to now.
    """
    start = (datetime.now(UTC) - span - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    midnight = (start + timedelta(days=1)).replace(hour=0)
    if start + span > midnight:
        start = (midnight - span).replace(minute=0)
    return start


def show_day(page: Page, day: date) -> str:
    """The page's query once it shows the site's (UTC) ``day``: today by default, else a custom day."""
    q = loaded(page)
    if f"from={day.isoformat()}T00%3A00" in q:
        return q
    page.get_by_label("Date range").select_option("custom")
    page.locator("#f-from").fill(day.isoformat())
    page.locator("#f-to").fill(day.isoformat())
    after = (day + timedelta(days=1)).isoformat()
    pattern = re.compile(f"from={day.isoformat()}T00%3A00.*to={after}T00%3A00")
    expect(page.locator("body")).to_have_attribute("data-query", pattern)
    return loaded(page)


def load_recent(server: Server) -> date:
    """st-a works for an hour making 30 units, st-b idles then; a line of both. Returns their day."""
    start = recent_start(timedelta(hours=1))

    def event(at: datetime, worker: str, station: str, kind: str, **extra: Any) -> Event:
        body = {
            "timestamp": at,
            "worker_id": worker,
            "station_id": station,
            "event_type": kind,
            "confidence": 0.9,
        }
        return Event.model_validate(body | extra)

    events = [
        event(start, "w1", "st-a", "working", duration_s=3600.0),
        event(start, "w2", "st-b", "idle", duration_s=1800.0),
        *(
            # Every tenth unit rejected (the others report none rejected): quality 90 %.
            event(
                start + timedelta(minutes=2 * i + 1),
                "w1",
                "st-a",
                "product_count",
                count=1,
                rejected=int(i % 10 == 0),
                sku="red",
            )
            for i in range(30)
        ),
    ]
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        write_events(conn, events)
    settled(server)
    _put(
        server,
        "/api/v1/targets/stations/st-a",
        {"ideal_cycle_time_s": 60, "effective_from": "2020-01-01T00:00:00Z"},
    )
    _put(server, "/api/v1/lines/line-x", {"site_id": "site-1", "name": "X", "stations": ["st-b", "st-a"]})
    return start.date()


def _assert_board(page: Page, server: Server, q: str, which: str) -> None:
    board = api_get(server, "/api/v1/metrics/hour-by-hour" + q + "&" + which)
    rows = page.locator("#hour-by-hour tbody tr")
    expect(rows).to_have_count(len(board["hours"]))
    for i, h in enumerate(board["hours"]):
        row = rows.nth(i)
        expect(row.locator("th")).to_have_text(h["hour_start"][11:16])
        cells = row.locator("td")
        for j, key in enumerate(("target_units", "actual_units", "cumulative_gap")):
            value = h[key]
            expect(cells.nth(j)).to_have_attribute("data-value", "" if value is None else _js(value))


def _js(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def test_shift_board_shows_the_apis_hours_line_and_losses(page: Page, dash_server: Server) -> None:
    day = load_recent(dash_server)
    sign_in(page, dash_server)
    q = show_day(page, day)
    expect(page.locator("#shift-target option")).to_have_count(3)  # the line and two stations
    page.get_by_label("Line or station").select_option(label="Line: X")
    expect(page.locator("#line-view")).to_be_visible()
    _assert_board(page, dash_server, q, "line_id=line-x")
    view = api_get(dash_server, "/api/v1/metrics/lines/line-x" + q)
    assert view["bottleneck_station_id"] == "st-a"
    expect(page.locator("#line-view caption")).to_have_text("Line X: bottleneck st-a")
    for s in view["stations"]:
        row = page.locator(f'#line-view tr[data-station="{s["station_id"]}"]')
        cells = row.locator("td")
        expect(cells.nth(0)).to_have_text(str(s["total_units_produced"]))
        expect(cells.nth(1)).to_have_attribute("data-value", _js(s["units_per_working_hour"]))
        for j, key in ((3, "performance_percentage"), (4, "quality_percentage"), (5, "oee_percentage")):
            value = s[key]
            expect(cells.nth(j)).to_have_attribute("data-value", "" if value is None else _js(value))
    assert view["stations"][1]["quality_percentage"] == 90 and view["stations"][1]["oee_percentage"]
    expect(page.locator('#line-view tr[data-station="st-a"] .badge')).to_have_text("bottleneck")
    losses = api_get(dash_server, "/api/v1/metrics/losses" + q + "&line_id=line-x")
    expect(page.locator("#losses tbody tr")).to_have_count(len(losses["rows"]))
    for r in losses["rows"]:
        expect(page.locator(f'#losses tr[data-reason="{r["code"]}"] td').first).to_have_attribute(
            "data-value", _js(r["lost_hours"])
        )
    shot(page, "shift-board-line")


def test_a_supervisor_sets_a_target_and_the_board_follows(page: Page, dash_server: Server) -> None:
    day = load_recent(dash_server)
    sign_in(page, dash_server)
    q = show_day(page, day)
    page.get_by_label("Line or station").select_option(label="Station: st-a")
    _assert_board(page, dash_server, q, "station_id=st-a")
    page.get_by_label("Ideal cycle time (s per unit)").fill("120")
    page.get_by_role("button", name="Save target").click()
    expect(page.locator("#shift-panel > [role=status]")).to_have_text("Target for st-a: 120 s per unit.")
    target = api_get(dash_server, "/api/v1/targets/stations/st-a")
    assert target["current"]["ideal_cycle_time_s"] == 120 and len(target["history"]) == 2
    _assert_board(page, dash_server, q, "station_id=st-a")
    expect(page.locator("#hour-by-hour tbody tr").last.locator("td").first).to_have_attribute(
        "data-value", re.compile(r"^\d")
    )
    shot(page, "shift-board-station")


def test_a_viewer_sees_no_target_form(page: Page, dash_server: Server) -> None:
    day = load_recent(dash_server)
    sign_in(page, dash_server, dash_server.viewer_token)
    show_day(page, day)
    # Site figures about fewer than k people are withheld for a viewer: "—", and the page works on.
    expect(page.locator('[data-metric="total_productive_time_hours"] .value')).to_have_text("—")
    expect(page.locator("#notice")).to_be_hidden()
    page.get_by_label("Line or station").select_option(label="Station: st-a")
    expect(page.locator("#hour-by-hour")).to_be_visible()
    expect(page.get_by_role("button", name="Save target")).to_have_count(0)


def test_a_supervisor_tags_an_idle_segment_from_the_timeline(page: Page, dash_server: Server) -> None:
    start = recent_start(timedelta(minutes=75))

    def state(minutes: int, kind: str, seconds: float) -> Event:
        return Event.model_validate({"timestamp": start + timedelta(minutes=minutes), "worker_id": "w1",
                                     "station_id": "st-a", "event_type": kind, "confidence": 0.9,
                                     "duration_s": seconds})  # fmt: skip

    with psycopg.connect(dash_server.dsn, autocommit=True) as conn:
        write_events(conn, [state(0, "working", 1800), state(30, "idle", 1200), state(50, "working", 600),
                            state(70, "idle", 240)])  # fmt: skip
    settled(dash_server)
    site = dash_server.settings.site_id
    reason = {"site_id": site, "code": "material", "label": "Waiting for material"}
    r = httpx.post(
        dash_server.url + "/api/v1/reasons", json=reason, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert r.status_code == 201, r.text
    sign_in(page, dash_server)
    show_day(page, start.date())
    page.get_by_role("button", name="Details of st-a").click()
    idle = page.locator("#timeline .seg.idle")
    expect(idle).to_have_count(2)
    long, short = idle.nth(0), idle.nth(1)
    long.click()
    expect(page.get_by_label("Reason")).to_be_visible()
    page.get_by_label("Reason").select_option(label="Waiting for material")
    page.get_by_role("button", name="Save reason").click()
    expect(page.locator("#loss-tag [role=status]")).to_have_text("Tagged material by admin.")
    window = {"from": start.isoformat(), "to": (start + timedelta(hours=2)).isoformat(), "station_id": "st-a"}
    tags = api_get(dash_server, "/api/v1/loss-tags?" + str(httpx.QueryParams(window)))
    assert [(t["from"][:19], t["to"][:19]) for t in tags] == [
        ((start + timedelta(minutes=30)).isoformat()[:19], (start + timedelta(minutes=50)).isoformat()[:19])
    ]
    assert long.get_attribute("data-start") is not None
    shot(page, "drill-loss-tag", full_page=False)
    short.click()
    expect(page.locator("#loss-tag [role=status]")).to_contain_text("needs no reason")
