"""End to end in headless Chromium (the Debian package, driven by Playwright).

A real uvicorn serves the API and the page against a real PostgreSQL
database. Waiting is done with Playwright's ``expect`` (it polls until the
condition holds); nothing asserts on how long anything took.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from takt.contract import Event
from takt.store.events import write_events
from tests.dashboard.conftest import ADMIN, Server

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium package is not installed"),
    pytest.mark.wallclock,
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@contextmanager
def browser_page(browser: Browser, timezone_id: str = "UTC") -> Iterator[Page]:
    """A page in a fresh context whose clock runs in ``timezone_id``; fails on JavaScript errors."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, timezone_id=timezone_id)
    # The page's clock is the test's clock, also when scripts/moved_clock.py moves it.
    context.clock.install(time=datetime.now(UTC))
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser: Browser, dash_server: Server) -> Iterator[Page]:
    # Depends on the server so that it closes (and with it the live stream)
    # before the server shuts down.
    with browser_page(browser) as pg:
        yield pg


@pytest.fixture
def tokyo_page(browser: Browser, dash_server: Server) -> Iterator[Page]:
    """A browser in Tokyo looking at a site elsewhere (tests set the site's zone with dash_settings)."""
    with browser_page(browser, "Asia/Tokyo") as pg:
        yield pg


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def api_get(server: Server, path: str, token: str = ADMIN) -> Any:
    response = httpx.get(server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    response.raise_for_status()
    return response.json()


def sign_in(page: Page, server: Server, token: str = ADMIN) -> None:
    page.goto(server.url + "/")
    expect(page).to_have_url(server.url + "/dashboard/")
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app")).to_be_visible()


def loaded(page: Page) -> str:
    """Waits until the numbers are on screen; returns the query they were fetched with."""
    expect(page.locator("body")).to_have_attribute("data-query", re.compile(r"from="))
    return str(page.locator("body").get_attribute("data-query"))


def seven_days_query() -> str:
    """The start of the page's 7-day window (the page runs in UTC), as its query writes it."""
    week_start = (datetime.now(UTC) - timedelta(days=6)).date().isoformat()
    return f"from={week_start}T00%3A00"


def seed(page: Page) -> str:
    """Loads the demo data from the UI; returns the query of the numbers fetched after it."""
    page.get_by_role("button", name="Load demo data").click()
    expect(page.locator("#f-range")).to_have_value("7d")
    # Only fetches made after the seed finished use the 7-day window.
    expect(page.locator("body")).to_have_attribute("data-query", re.compile(seven_days_query()))
    expect(page.locator("#workers tbody tr[data-id]")).to_have_count(6)
    return loaded(page)


def card_value(page: Page, metric: str) -> str:
    return str(page.locator(f'[data-metric="{metric}"] .value').get_attribute("data-value"))


FACTORY_CARDS = (
    "total_productive_time_hours",
    "total_production_count",
    "average_production_rate",
    "average_utilization_percentage",
)


def js_number(value: float) -> str:
    """How the page writes a JSON number into data-value (JavaScript's String(number))."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def settled(server: Server) -> None:
    """Waits until the rollup refresher has consumed every stored event, so the API's numbers are final."""
    deadline = time.monotonic() + 60
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM event_invalidations").fetchone() != (0,):
            assert time.monotonic() < deadline, "the rollup refresher did not catch up"
            time.sleep(0.1)


def assert_page_matches_api(page: Page, server: Server, q: str) -> None:
    """Every summary card and table cell equals the API's answer to the page's own query.

    ``expect`` waits for the live updates to bring the page to the API's final numbers.
    """
    settled(server)
    expect(page.locator("body")).to_have_attribute("data-query", q)
    factory = api_get(server, "/api/metrics/factory" + q)
    for metric in FACTORY_CARDS:
        expect(page.locator(f'[data-metric="{metric}"] .value')).to_have_attribute(
            "data-value", js_number(factory[metric])
        )
    workers = api_get(server, "/api/metrics/workers" + q)
    expect(page.locator("#workers tbody tr[data-id]")).to_have_count(len(workers))
    for w in workers:
        row = page.locator(f'#workers tbody tr[data-id="{w["worker_id"]}"]')
        for key in (
            "utilization_percentage",
            "total_active_time_hours",
            "total_idle_time_hours",
            "total_units_produced",
            "units_per_hour",
            "event_count",
        ):
            expect(row.locator(f'[data-col="{key}"]')).to_have_attribute("data-value", js_number(w[key]))
    stations = api_get(server, "/api/metrics/workstations" + q)
    expect(page.locator("#stations tbody tr[data-id]")).to_have_count(len(stations))
    for st in stations:
        row = page.locator(f'#stations tbody tr[data-id="{st["station_id"]}"]')
        for key in (
            "utilization_percentage",
            "occupancy_time_hours",
            "total_units_produced",
            "throughput_rate",
        ):
            expect(row.locator(f'[data-col="{key}"]')).to_have_attribute("data-value", js_number(st[key]))


def test_login_rejects_a_wrong_token_and_shows_the_apis_numbers(page: Page, dash_server: Server) -> None:
    page.goto(dash_server.url + "/")
    page.get_by_label("Access token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_have_text("That token is not valid.")
    expect(page.locator("#app")).to_be_hidden()

    page.get_by_label("Access token").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#role")).to_have_text("admin")
    q = seed(page)
    assert_page_matches_api(page, dash_server, q)
    assert int(card_value(page, "total_production_count")) > 0
    shot(page, "overview")

    # Sorting by units puts the API's top producer first.
    page.locator("#workers").get_by_role("button", name="Units", exact=True).click()
    top = max(api_get(dash_server, "/api/metrics/workers" + q), key=lambda w: w["total_units_produced"])
    expect(page.locator("#workers tbody tr[data-id]").first).to_have_attribute("data-id", top["worker_id"])
    # Searching narrows the table.
    page.get_by_label("Search workers").fill("Alice")
    expect(page.locator("#workers tbody tr[data-id]")).to_have_count(1)


def test_filters_change_the_numbers(page: Page, dash_server: Server) -> None:
    sign_in(page, dash_server)
    q_week = seed(page)
    assert_page_matches_api(page, dash_server, q_week)
    week_units = int(card_value(page, "total_production_count"))
    assert week_units > 0

    # The demo data runs up to now: today shows today's part of it (none yet just after
    # midnight), always fewer units than the week that also holds the two days before.
    page.get_by_label("Date range").select_option("today")
    today = datetime.now(UTC).date().isoformat()
    expect(page.locator("body")).to_have_attribute("data-query", re.compile(f"from={today}T00%3A00"))
    q_today = loaded(page)
    assert q_today != q_week
    assert_page_matches_api(page, dash_server, q_today)
    assert int(card_value(page, "total_production_count")) < week_units

    # A custom range of only the day before yesterday: fewer units than the week.
    day = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    page.get_by_label("Date range").select_option("custom")
    page.locator("#f-from").fill(day)
    page.locator("#f-to").fill(day)
    page.locator("#f-to").dispatch_event("change")
    next_day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    expect(page.locator("body")).to_have_attribute(
        "data-query", re.compile(f"from={day}T00%3A00%3A00.000Z&to={next_day}T00%3A00%3A00.000Z")
    )
    q_day = loaded(page)
    day_units = int(card_value(page, "total_production_count"))
    assert 0 < day_units < week_units
    assert_page_matches_api(page, dash_server, q_day)

    # A station filter narrows the station table to it and the cards to its numbers.
    page.locator("#f-station").select_option("S1")
    expect(page.locator("#stations tbody tr[data-id]")).to_have_count(1)
    expect(page.locator('[data-metric="throughput_rate"]')).to_be_visible()
    station = api_get(dash_server, "/api/metrics/workstations/S1" + q_day)
    for metric in ("throughput_rate", "total_units_produced", "utilization_percentage"):
        expect(page.locator(f'[data-metric="{metric}"] .value')).to_have_attribute(
            "data-value", js_number(station[metric])
        )
    # Only the workers seen at S1 that day remain in the worker table.
    at_s1 = api_get(dash_server, "/api/stations/S1/workers" + q_day)
    expect(page.locator("#workers tbody tr[data-id]")).to_have_count(len(at_s1))


def test_drill_down_shows_the_days_timeline_charts_and_events(page: Page, dash_server: Server) -> None:
    sign_in(page, dash_server)
    seed(page)
    page.get_by_role("button", name="Details of Alice Johnson").click()
    dialog = page.locator("#drill")
    expect(dialog).to_be_visible()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    page.locator("#drill-day").fill(yesterday.isoformat())
    page.locator("#drill-day").dispatch_event("change")
    expect(page.locator("#timeline .seg.working").first).to_be_attached()
    timeline = api_get(
        dash_server,
        f"/api/timeline?worker_id=W1&from={yesterday}T00:00:00Z&to={yesterday + timedelta(days=1)}T00:00:00Z",
    )
    expect(page.locator("#timeline .seg")).to_have_count(len(timeline["segments"]))
    assert {s["state"] for s in timeline["segments"]} >= {"working", "idle"}
    expect(page.locator("#chart-units .uplot")).to_be_attached()
    expect(page.locator("#chart-util .uplot")).to_be_attached()
    expect(page.locator("#recent tbody tr[data-event]")).to_have_count(25)
    expect(page.locator("#recent tbody")).to_contain_text("seed")
    # The events listed are the chosen day's, as the heading says, not the newest ones.
    expect(page.get_by_role("heading", name=re.compile("^Last events on"))).to_have_text(
        f"Last events on {long_date(yesterday)}"
    )
    stamps = page.locator("#recent tbody tr[data-event] td:first-child").evaluate_all(
        "cells => cells.map((cell) => cell.title)"
    )
    assert stamps and all(s.startswith(yesterday.isoformat()) for s in stamps), stamps
    shot(page, "drill-down", full_page=False)


def _event(when: datetime, kind: str, count: int = 0) -> Event:
    return Event.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "timestamp": when,
            "worker_id": "W1",
            "station_id": "S1",
            "event_type": kind,
            "confidence": 0.91,
            "count": count,
            "model_version": "person-yolo11n@live-test",
        }
    )


def test_an_event_stored_during_the_test_appears_without_reload(page: Page, dash_server: Server) -> None:
    with psycopg.connect(dash_server.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO gateways (gateway_id, site_id, state, last_seen, status) VALUES "
            "('gw-line1', 'site-1', 'online', now(), %s), "
            "('gw-line2', 'site-1', 'offline', now() - interval '1 hour', '{}')",
            (
                json.dumps(
                    {
                        "fps": 14.8,
                        "backlog": 1200,
                        "oldest_buffered_age_s": 340,
                        "model_version": "person-yolo11n@2026.11.1",
                        "replaying": True,
                        "camera_state": "ok",
                        "cameras": [
                            {
                                "camera_id": "cam-a",
                                "fps": 5.0,
                                "health": {"state": "ok"},
                                "detect_fps": 1.8,
                                "detector_overloaded": False,
                            },
                            {
                                "camera_id": "cam-b",
                                "fps": 4.9,
                                "detect_fps": 0.6,
                                "detector_overloaded": True,
                                "detection_age_max_s": 7.4,
                                "health": {
                                    "state": "covered",
                                    "since": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
                                },
                            },
                        ],
                    }
                ),
            ),
        )
    sign_in(page, dash_server)
    # Events of the last minutes fall in the 7-day window even just after midnight.
    page.get_by_label("Date range").select_option("7d")
    expect(page.locator("body")).to_have_attribute("data-query", re.compile(seven_days_query()))
    loaded(page)
    expect(page.locator("#live")).to_have_text("Live")
    expect(page.locator('[data-metric="total_production_count"] .value')).to_have_attribute("data-value", "0")
    expect(page.locator('[data-gateway="gw-line1"]')).to_contain_text("replaying backlog")
    expect(page.locator('[data-gateway="gw-line2"]')).to_have_attribute("data-state", "offline")
    # Each camera's view health, as a supervisor reads it: a covered camera stands out.
    cameras = page.get_by_role("list", name="Cameras of gw-line1").get_by_role("listitem")
    expect(cameras).to_have_count(2)
    # ... and how often the detector sees it: an overloaded gateway stands out the same way.
    expect(cameras.nth(0)).to_have_text(re.compile(r"cam-a\s*5(\.0)? fps\s*view ok\s*detector 1\.8/s"))
    expect(cameras.nth(1)).to_have_text(
        re.compile(
            r"cam-b\s*4\.9 fps\s*view covered for 5 min\s*"
            r"detector 0\.6/s: overloaded, detections up to 7 s old"
        )
    )
    page.locator('[data-gateway="gw-line1"]').screenshot(path=str(SCREENSHOTS / "gateway-cameras.png"))
    marker = page.evaluate("() => { window.__notReloaded = true; return true; }")
    assert marker

    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(dash_server.dsn) as conn:
        write_events(
            conn,
            [
                _event(now - timedelta(minutes=3), "working"),
                _event(now - timedelta(minutes=2), "product_count", 7),
            ],
        )

    expect(page.locator('[data-metric="total_production_count"] .value')).to_have_attribute("data-value", "7")
    expect(page.locator('[data-metric="active_workers"] .value')).to_have_attribute("data-value", "1")
    expect(page.locator("#workers tbody tr[data-id=W1]")).to_be_visible()
    assert page.evaluate("() => window.__notReloaded === true")

    # The open drill-down's timeline and events follow as well.
    page.get_by_role("button", name="Details of W1").click()
    expect(page.locator("#timeline .seg.working")).to_have_count(1)
    with psycopg.connect(dash_server.dsn) as conn:
        write_events(conn, [_event(now - timedelta(minutes=1), "idle")])
    expect(page.locator("#timeline .seg.idle")).to_have_count(1)
    expect(page.locator("#recent tbody")).to_contain_text("person-yolo11n@live-test")
    shot(page, "live", full_page=False)


def test_models_panel_shows_each_version_and_the_drift_flags(
    page: Page, dash_server: Server, tmp_path: Path
) -> None:
    from tests.models.footage import CANDIDATE, PRODUCTION, two_version_events

    # Production and a shadow candidate on the same generated clip, which ended a minute ago.
    events = two_version_events(tmp_path, seconds=30)
    with psycopg.connect(dash_server.dsn, autocommit=True) as conn:
        write_events(conn, events)
        conn.execute(
            "INSERT INTO drift_flags (checked_at, site_id, subject_kind, subject_id, metric, value, "
            "threshold, baseline_from, baseline_to, recent_from, recent_to) VALUES "
            "(now(), 'demo-site', 'station', 'st-1', 'confidence_psi', 0.61, 0.2, now(), now(), now(), now())"
        )
    sign_in(page, dash_server)
    # The last seven days hold the clip whatever the time of day, even just after midnight.
    page.get_by_label("Date range").select_option("7d")
    expect(page.locator("body")).to_have_attribute("data-query", re.compile(seven_days_query()))
    q = loaded(page)
    settled(dash_server)
    expect(page.locator("#models tbody tr[data-model]")).to_have_count(2)
    for m in api_get(dash_server, "/api/metrics/models" + q):
        row = page.locator(
            f'#models tr[data-model="{m["model_version"]}"][data-shadow="{str(m["shadow"]).lower()}"]'
        )
        expect(row).to_contain_text("shadow" if m["shadow"] else "production")
        for key in ("event_count", "total_units", "working_hours", "mean_confidence"):
            expect(row.locator(f'[data-col="{key}"]')).to_have_attribute("data-value", js_number(m[key]))
    expect(page.locator(f'#models tr[data-model="{PRODUCTION}"] [data-col="p50"]')).not_to_have_attribute(
        "data-value", ""
    )
    expect(page.locator(f'#models tr[data-model="{CANDIDATE}"] [data-col="total_units"]')).to_have_attribute(
        "data-value", "0"
    )
    flag = page.locator('#drift-flags li[data-subject="station:st-1"]')
    expect(flag).to_contain_text("confidence distribution shifted (PSI) 0.61")
    shot(page, "models-panel")


# ---------------------------------------------------------------------------
# What a person reads: axes, durations, rows, notices, "today", static files.

CHICAGO = "America/Chicago"
CHICAGO_SITE = pytest.mark.dash_settings(calendars={"site-1": {"timezone": CHICAGO}})
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sept", "Oct", "Nov", "Dec")  # en-GB
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def site_midnight(day: date, tz: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def long_date(day: date) -> str:
    """How the page writes a date (en-GB, short): "Mon, 30 Nov 2026"."""
    return f"{WEEKDAYS[day.weekday()]}, {day.day} {MONTHS[day.month - 1]} {day.year}"


def state(
    when: datetime, kind: str, *, worker: str = "W1", duration_s: float | None = None, count: int = 0
) -> Event:
    return Event.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "timestamp": when,
            "worker_id": worker,
            "station_id": "S1",
            "event_type": kind,
            "confidence": 0.9,
            "count": count,
            "duration_s": duration_s,
            "model_version": "person-yolo11n@test",
        }
    )


def chart(page: Page, selector: str) -> dict[str, Any]:
    """The uPlot instance of a chart as drawn: x scale, tick positions and their labels, series values."""
    return dict(
        page.evaluate(
            """(sel) => { const u = document.querySelector(sel).uplot;
                return { min: u.scales.x.min, max: u.scales.x.max, splits: u.axes[0]._splits,
                         labels: u.axes[0]._values, xs: u.data[0], values: u.data[1] }; }""",
            selector,
        )
    )


@CHICAGO_SITE
def test_drill_down_charts_span_exactly_their_window_in_the_sites_time_zone(
    tokyo_page: Page, dash_server: Server
) -> None:
    page = tokyo_page
    # One hour of work yesterday, site time (Chicago), seen from a browser in Tokyo.
    day = datetime.now(ZoneInfo(CHICAGO)).date() - timedelta(days=1)
    lo, hi = site_midnight(day, CHICAGO), site_midnight(day + timedelta(days=1), CHICAGO)
    ten = lo + timedelta(hours=10)
    with psycopg.connect(dash_server.dsn) as conn:
        write_events(
            conn,
            [
                state(ten, "working", duration_s=3600),
                state(ten + timedelta(minutes=20), "product_count", count=5),
                state(ten + timedelta(minutes=40), "product_count", count=4),
            ],
        )
    sign_in(page, dash_server)
    page.get_by_label("Date range").select_option("7d")
    expect(page.locator("#workers tbody tr[data-id=W1]")).to_be_visible()
    page.get_by_role("button", name="Details of W1").click()
    page.locator("#drill-day").fill(day.isoformat())
    page.locator("#drill-day").dispatch_event("change")
    expect(page.locator("#chart-units")).to_have_attribute("data-points", "1")

    units = chart(page, "#chart-units")
    # The axis is the site's day, midnight to midnight: not the browser's, not a guess from one point.
    assert (units["min"], units["max"]) == (lo.timestamp(), hi.timestamp())
    hours = round((hi - lo).total_seconds() / 3600)  # 23 or 25 on a DST day
    assert len(units["values"]) == hours
    assert units["values"][10] == 9
    assert sum(units["values"]) == 9 and units["values"].count(0) == hours - 1  # empty hours are zero
    assert all(lo.timestamp() < x < hi.timestamp() for x in units["xs"])
    # Tick labels are the site's clock times, inside the day.
    assert units["labels"] and all(re.fullmatch(r"([01]\d|2[0-3]):00", t) for t in units["labels"])
    assert "12:00" in units["labels"]
    assert all(lo.timestamp() <= s <= hi.timestamp() for s in units["splits"])
    noon = units["splits"][units["labels"].index("12:00")]
    assert noon == (lo + timedelta(hours=12)).timestamp() or hours != 24
    expect(page.locator("#drill-day-label")).to_have_text(long_date(day))
    expect(page.locator("#chart-units-window")).to_have_text(f"{long_date(day)}, 00:00–24:00 ({CHICAGO})")

    util = chart(page, "#chart-util")
    trend_from = site_midnight(day - timedelta(days=13), CHICAGO)
    assert (util["min"], util["max"]) == (trend_from.timestamp(), hi.timestamp())
    assert len(util["values"]) == 14
    assert util["values"][-1] == 100  # the hour worked, no idle
    assert util["values"][:-1] == [None] * 13  # days without data are gaps, not 0 %
    assert util["labels"] and all(re.fullmatch(r"\d{1,2} [A-Z][a-z]{2,3}", t) for t in util["labels"])
    assert all(trend_from.timestamp() <= s <= hi.timestamp() for s in util["splits"])
    first = day - timedelta(days=13)
    expect(page.locator("#chart-util-window")).to_have_text(
        f"{first.day} {MONTHS[first.month - 1]} – {long_date(day)} ({CHICAGO})"
    )
    shot(page, "drill-down-axes", full_page=False)


def test_recent_events_show_one_row_per_state_and_durations_in_minutes(
    page: Page, dash_server: Server
) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    with psycopg.connect(dash_server.dsn) as conn:
        write_events(
            conn,
            [
                # How the edge agent writes a state: an opening change (duration 0), later
                # the closing segment at the same timestamp with the state's length.
                state(t0, "working", duration_s=0),
                state(t0, "working", duration_s=720),
                state(t0 + timedelta(minutes=12), "idle", duration_s=0),  # still going on
                state(t0, "working", worker="W2", duration_s=5400),
            ],
        )
    sign_in(page, dash_server)
    page.get_by_label("Date range").select_option("7d")
    w1 = page.locator("#workers tbody tr[data-id=W1]")
    # A short stint reads in minutes, a long one in hours with one decimal; never "0.2" or "0.0 h".
    expect(w1.locator('[data-col="total_active_time_hours"]')).to_have_text("12 min")
    expect(page.locator('#workers tbody tr[data-id=W2] [data-col="total_active_time_hours"]')).to_have_text(
        "1.5 h"
    )
    expect(page.locator('[data-metric="total_productive_time_hours"] .value')).to_have_text("1.7 h")

    page.get_by_role("button", name="Details of W1").click()
    # The drill-down lists the chosen day's events: the day of t0 (3 h ago may be yesterday).
    page.locator("#drill-day").fill(t0.date().isoformat())
    page.locator("#drill-day").dispatch_event("change")
    rows = page.locator("#recent tbody tr[data-event]")
    expect(rows).to_have_count(2)
    expect(page.locator('#drill-metrics .card:has-text("Active") .value')).to_have_text("12 min")
    seen = [tuple(r.locator("td").all_inner_texts()[:3]) for r in rows.all()]
    start = t0.strftime("%H:%M:%S")
    idle_at = (t0 + timedelta(minutes=12)).strftime("%H:%M:%S")
    assert seen == [(idle_at, "idle", "started"), (start, "working", "12 min")]
    assert len({(t, e) for t, e, _ in seen}) == len(seen), "two rows look alike"


def test_an_error_notice_reads_the_apis_error_not_raw_json(page: Page, dash_server: Server) -> None:
    sign_in(page, dash_server)
    loaded(page)
    today = datetime.now(UTC).date()
    far = today.replace(year=today.year - 11, day=min(today.day, 28))
    page.get_by_label("Date range").select_option("custom")
    page.locator("#f-from").fill(far.isoformat())
    page.locator("#f-from").dispatch_event("change")
    q = f"?from={far}T00:00:00Z&to={today + timedelta(days=1)}T00:00:00Z"
    answer = httpx.get(
        dash_server.url + "/api/metrics/factory" + q, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
    )
    assert answer.status_code == 422
    notice = page.locator("#notice")
    expect(notice).to_be_visible()
    expect(notice).to_have_text(f"The API answered 422: {answer.json()['error']}")
    assert "{" not in notice.inner_text()


@CHICAGO_SITE
def test_events_today_count_the_sites_day_not_the_browsers(tokyo_page: Page, dash_server: Server) -> None:
    page = tokyo_page
    # The browser's clock stands at noon of the site's yesterday (Chicago); the browser
    # itself runs in Tokyo, whose midnight falls at 09:00 or 10:00 in Chicago.
    day = datetime.now(ZoneInfo(CHICAGO)).date() - timedelta(days=1)
    midnight = site_midnight(day, CHICAGO)
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo(CHICAGO))
    page.clock.set_fixed_time(noon)
    with psycopg.connect(dash_server.dsn) as conn:
        write_events(
            conn,
            [
                state(midnight - timedelta(minutes=30), "product_count", count=1),  # the day before
                state(midnight + timedelta(minutes=30), "product_count", count=1),
                state(midnight + timedelta(hours=5), "product_count", count=1),
                state(midnight + timedelta(hours=11), "product_count", count=1),  # after Tokyo's midnight
            ],
        )
    settled(dash_server)
    sign_in(page, dash_server)
    stamp = midnight.isoformat().replace("+00:00", ".000Z").replace(":", "%3A")
    expect(page.locator("body")).to_have_attribute("data-query", re.compile(f"from={re.escape(stamp)}"))
    expect(page.locator('[data-metric="events_today"] .value')).to_have_text("3")
    expect(page.locator('[data-metric="total_production_count"] .value')).to_have_text("3")
    expect(page.locator("#window")).to_contain_text(f"{long_date(day)} 00:00")
    expect(page.locator("#window")).to_contain_text(f"({CHICAGO})")


def test_the_page_loads_without_a_failed_request_and_has_an_icon(page: Page, dash_server: Server) -> None:
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    sign_in(page, dash_server)
    loaded(page)
    expect(page.locator("#live")).to_have_text("Live")
    # The chart library is served (its stylesheet applies, its module runs).
    assert page.evaluate(
        "() => [...document.styleSheets].some((s) => (s.href || '').endsWith('uPlot.min.css'))"
    )
    icon = page.evaluate(
        """async () => { const href = document.querySelector('link[rel=icon]').href;
            const r = await fetch(href); const ico = await fetch('/favicon.ico');
            const type = (x) => x.headers.get('content-type');
            return [r.status, type(r), ico.status, type(ico)]; }"""
    )
    assert icon == [200, "image/svg+xml", 200, "image/x-icon"]
    assert failed == []
