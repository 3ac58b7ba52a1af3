"""The andon wallboard in headless Chromium, read as a person on the shop floor reads it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from api.security import Role, create_token
from tests.dashboard.conftest import ADMIN, Server
from tests.dashboard.test_e2e import CHROMIUM, browser, browser_page, shot, sign_in  # noqa: F401

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium package is not installed"),
    pytest.mark.wallclock,
    # The incidents these tests store are shown as stored: no evaluator resolves them meanwhile.
    pytest.mark.dash_settings(alert_interval_s=0),
]
SITE = "site-a"


def ev(
    kind: str, station: str, at: datetime, worker: str, count: int = 0, sku: str | None = None
) -> dict[str, Any]:
    extra = {} if sku is None else {"sku": sku}
    return {
        **extra,
        "event_id": str(uuid.uuid4()),
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "worker_id": worker,
        "workstation_id": station,
        "event_type": kind,
        "confidence": 0.9,
        "count": count,
        "site_id": SITE,
    }


def post(server: Server, events: list[dict[str, Any]]) -> None:
    answer = httpx.post(
        server.url + "/api/events/batch",
        json=events,
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


@pytest.fixture
def board(browser: Browser, dash_server: Server) -> Iterator[Page]:  # noqa: F811
    with browser_page(browser) as pg:
        pg.set_viewport_size({"width": 1920, "height": 1080})
        yield pg


@pytest.fixture
def kiosk(dash_server: Server) -> str:
    with psycopg.connect(dash_server.dsn, autocommit=True) as conn:
        return create_token(conn, Role.KIOSK, "wallboard")


def test_kiosk_token_reads_the_wallboard_and_nothing_else(dash_server: Server, kiosk: str) -> None:
    auth = {"Authorization": f"Bearer {kiosk}"}
    assert httpx.get(dash_server.url + f"/api/v1/andon?site_id={SITE}", headers=auth).status_code == 200
    for path in ("/api/v1/alerts", "/api/metrics/factory", "/api/session", "/api/now", "/api/gateways"):
        assert httpx.get(dash_server.url + path, headers=auth).status_code == 403, path
    bad = httpx.get(dash_server.url + "/api/v1/andon?line=L1", headers=auth)
    assert bad.status_code == 404
    assert "unknown line_id 'L1'" in bad.json()["error"]


def test_wallboard_shows_states_with_their_time_units_and_incidents_and_updates_live(
    board: Page, dash_server: Server, kiosk: str
) -> None:
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    post(
        dash_server,
        [
            ev("working", "S1", now - timedelta(minutes=5), "W1"),
            ev("working", "S2", now - timedelta(minutes=30), "W2"),
            # Within TAKT_MAX_STATE_GAP_S (10 min) of now: an untimed state is in force that long.
            ev("idle", "S2", now - timedelta(minutes=8), "W2"),
            ev("absent", "S3", now - timedelta(minutes=3), "W3"),
            # All within the site's (UTC) day, even a few seconds after midnight.
            *[
                ev("product_count", "S1", max(now - timedelta(seconds=30 - i), midnight), "W1", 1)
                for i in range(7)
            ],
        ],
    )
    with psycopg.connect(dash_server.dsn, autocommit=True) as conn:
        rule = conn.execute(
            "INSERT INTO alert_rules (kind, site_id, station_id, minutes) "
            "VALUES ('station_idle', %s, 'S2', 10) "
            "RETURNING rule_id",
            (SITE,),
        ).fetchone()
        assert rule is not None
        conn.execute(
            "INSERT INTO alert_incidents (rule_id, site_id, subject, summary, details, condition_since, "
            "started_at) "
            "VALUES (%s, %s, 'S2', 'Station S2 idle for 10 min', %s, %s, %s)",
            (
                rule[0],
                SITE,
                Jsonb({"station_id": "S2"}),
                now - timedelta(minutes=8),
                now - timedelta(minutes=2),
            ),
        )
    board.goto(dash_server.url + f"/dashboard/andon?site={SITE}#token={kiosk}")
    # The token leaves the address bar at once.
    expect(board).to_have_url(dash_server.url + f"/dashboard/andon?site={SITE}")
    expect(board.get_by_role("heading", name=f"Site {SITE}")).to_be_visible()
    s1, s2, s3 = (board.locator(f'[data-station="{s}"]') for s in ("S1", "S2", "S3"))
    expect(s1).to_have_attribute("data-state", "working")
    expect(s1).to_contain_text("Working")
    expect(s1.locator(".for")).to_have_text(re.compile(r"^for [56] min$"))
    expect(s1).to_contain_text("7 units today")
    expect(s2).to_contain_text("Idle")
    expect(s2.locator(".for")).to_have_text(re.compile(r"^for [89] min$"))
    expect(s2).to_have_attribute("data-alert", "")
    expect(s3).to_contain_text("Absent")
    expect(s3.locator(".for")).to_have_text(re.compile(r"^for [34] min$"))
    expect(board.locator("#units-today")).to_have_text("7")
    expect(board.locator("#target-today")).to_have_text("no target set")
    incidents = board.locator("#incidents li")
    expect(incidents).to_have_count(1)
    expect(incidents.first).to_contain_text("Station S2 idle for 10 min")
    expect(incidents.first).to_contain_text(re.compile(r"open [23] min"))
    # Readable from 5 m: station names and states are large on a 1080p screen.
    name_px = s1.locator("h3").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert name_px >= 44
    # Every state word is whole inside its tile (not cut off at the tile's edge), on this screen and
    # on a narrow, tall one where the tiles are narrower than the word at the board's type size.
    for size in ({"width": 1920, "height": 1080}, {"width": 1000, "height": 1080}):
        board.set_viewport_size(size)
        for tile in board.locator(".station").all():
            fits = tile.locator(".state").evaluate("e => e.scrollWidth <= e.clientWidth + 1")
            assert fits, (size, tile.inner_text())
    board.set_viewport_size({"width": 1920, "height": 1080})
    colours = {
        s: board.locator(f'[data-station="{s}"]').evaluate("e => getComputedStyle(e).backgroundColor")
        for s in ("S1", "S2", "S3")
    }
    assert len(set(colours.values())) == 3, colours
    shot(board, "andon", full_page=False)

    # Work resumes at S2: the board follows without a reload.
    post(dash_server, [ev("working", "S2", datetime.now(UTC), "W2")])
    expect(s2).to_have_attribute("data-state", "working", timeout=15_000)
    expect(s2.locator(".for")).to_have_text(re.compile(r"^for \d+ s$"))

    # A target for S1 (60 s a unit since yesterday): the board shows what it asks for.
    with psycopg.connect(dash_server.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO station_targets (station_id, effective_from, ideal_cycle_time_s, set_by) "
            "VALUES ('S1', %s, 60, 'test')",
            (now - timedelta(days=1),),
        )
    # The last hour is all planned time (no calendar) at 60 s a unit: 60 units asked for.
    expect(board.locator("#target-hour")).to_have_text("target 60", timeout=15_000)
    expect(board.locator("#target-today")).to_have_text(re.compile(r"^target [\d,]+$"))


def test_wallboard_target_weights_the_skus_made_as_the_station_metrics_do(
    board: Page, dash_server: Server, kiosk: str
) -> None:
    """Station-wide 60 s a unit, SKU "fast" 20 s and "slow" 120 s: for 30 fast and 5 slow units made
    (1,200 s of ideal time) an hour asks for 3,600 × 35 / 1,200 = 105 units, not the station-wide 60;
    since midnight, its seconds × 35 / 1,200 (docs/metrics.md, "Target periods")."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = now - timedelta(days=1)
    with psycopg.connect(dash_server.dsn, autocommit=True) as conn:
        for sku, cycle_s in (("", 60), ("fast", 20), ("slow", 120)):
            conn.execute(
                "INSERT INTO station_targets (station_id, sku, effective_from, ideal_cycle_time_s, set_by) "
                "VALUES ('S1', %s, %s, %s, 'test')",
                (sku, since, cycle_s),
            )
    # Every unit within the last half hour and today (a few seconds after midnight at the earliest).
    made = (("fast", 30, 5), ("slow", 5, 20))  # (SKU, units, seconds past each minute back)
    units = [
        ev("product_count", "S1", max(now - timedelta(minutes=i, seconds=s), midnight), "W1", 1, sku)
        for sku, n, s in made
        for i in range(n)
    ]
    post(dash_server, units)
    answer = httpx.get(
        dash_server.url + f"/api/v1/andon?site_id={SITE}", headers={"Authorization": f"Bearer {kiosk}"}
    ).json()
    assert answer["actual"]["units_today"] == 35
    assert answer["target"]["units_per_hour"] == 105.0
    at = datetime.fromisoformat(answer["at"])
    assert answer["target"]["units_today"] == round((at - midnight).total_seconds() * 35 / 1200)
    # The metrics' own figure for the same hour agrees (one rule).
    hour = {"from": (at - timedelta(hours=1)).isoformat(), "to": at.isoformat(), "site_id": SITE}
    stations = httpx.get(
        dash_server.url + "/api/v1/metrics/workstations",
        params=hour,
        headers={"Authorization": f"Bearer {ADMIN}"},
    ).json()
    s1 = next(s for s in stations if s["station_id"] == "S1")
    assert s1["target_units"] == pytest.approx(105.0)

    board.goto(dash_server.url + f"/dashboard/andon?site={SITE}#token={kiosk}")
    expect(board.locator("#units-today")).to_have_text("35")
    expect(board.locator("#target-hour")).to_have_text("target 105")
    today = board.locator("#target-today").inner_text()
    shown_at = datetime.now(UTC)
    asked = int(today.removeprefix("target ").replace(",", ""))
    # What a person reads: the target since midnight at the SKU mix's pace (within the page's 2 s poll).
    assert abs(asked - (shown_at - midnight).total_seconds() * 35 / 1200) <= 1 + 3 * 35 / 1200, today


def test_wallboard_without_a_token_says_what_it_needs(board: Page, dash_server: Server) -> None:
    board.goto(dash_server.url + "/dashboard/andon")
    expect(board.get_by_role("alert")).to_contain_text("needs a kiosk token")


def _incident(dsn: str, summary: str, *, started: datetime, resolved: datetime | None = None) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rule = conn.execute(
            "INSERT INTO alert_rules (kind, site_id, minutes) VALUES ('gateway_offline', %s, 5) "
            "RETURNING rule_id",
            (SITE,),
        ).fetchone()
        assert rule is not None
        row = conn.execute(
            "INSERT INTO alert_incidents (rule_id, site_id, subject, summary, condition_since, started_at, "
            "resolved_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING incident_id",
            (rule[0], SITE, summary, summary, started, started, resolved),
        ).fetchone()
        assert row is not None
        return int(row[0])


def test_alerts_panel_lists_open_incidents_takes_an_acknowledgement_and_shows_history(
    board: Page, dash_server: Server
) -> None:
    now = datetime.now(UTC)
    open_id = _incident(dash_server.dsn, "Gateway gw-7 offline for 9 min", started=now - timedelta(minutes=4))
    _incident(
        dash_server.dsn,
        "Station S4 idle for 15 min",
        started=now - timedelta(hours=2),
        resolved=now - timedelta(hours=2) + timedelta(minutes=25),
    )
    sign_in(board, dash_server)
    panel = board.locator("#alerts")
    row = panel.locator(f'tr[data-incident="{open_id}"]')
    expect(row).to_contain_text("Gateway gw-7 offline for 9 min")
    expect(row).to_contain_text("open")
    expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^[45] min$"))
    history = panel.locator("table.alerts-history tbody tr")
    expect(history).to_have_count(1)
    expect(history.first).to_contain_text("Station S4 idle for 15 min")
    expect(history.first.locator("td").nth(3)).to_have_text("25 min")
    row.get_by_label(f"Note for incident {open_id}").fill("electrician on the way")
    row.get_by_role("button", name="Acknowledge").click()
    expect(row).to_contain_text("acknowledged")
    expect(row).to_contain_text("electrician on the way")
    expect(row.get_by_role("button", name="Acknowledge")).to_have_count(0)
    stored = httpx.get(
        dash_server.url + f"/api/v1/alerts/{open_id}", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()
    assert stored["ack_note"] == "electrician on the way"
    panel.scroll_into_view_if_needed()
    shot(board, "alerts-panel", full_page=False)


def test_viewers_see_incidents_but_cannot_acknowledge(board: Page, dash_server: Server) -> None:
    open_id = _incident(dash_server.dsn, "Gateway gw-8 offline for 6 min", started=datetime.now(UTC))
    sign_in(board, dash_server, dash_server.viewer_token)
    row = board.locator(f'#alerts tr[data-incident="{open_id}"]')
    expect(row).to_contain_text("Gateway gw-8 offline for 6 min")
    expect(row.get_by_role("button", name="Acknowledge")).to_have_count(0)
