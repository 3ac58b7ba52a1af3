"""The page shows what the token may see (docs/privacy.md), read in Chromium as a person reads it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from api.security import Role, create_token
from takt.privacy import PrivacyLevel, SitePrivacy
from tests.dashboard.conftest import ADMIN, Server
from tests.dashboard.test_e2e import CHROMIUM, browser, browser_page, loaded, shot, sign_in

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared with test_e2e

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium package is not installed"),
    pytest.mark.wallclock,
]


@pytest.fixture
def page(browser: Browser, dash_server: Server) -> Iterator[Page]:
    httpx.post(dash_server.url + "/api/seed", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=120)
    with browser_page(browser) as p:
        yield p


# The seed's stations have one or two people each: k = 1 here, so a viewer sees them.
@pytest.mark.dash_settings(
    site_id="site-1",
    privacy={
        "*": SitePrivacy(min_group=1),
        "site-1": SitePrivacy(level=PrivacyLevel.PSEUDONYMOUS, min_group=1),
    },
)
def test_a_viewer_sees_stations_only_and_a_supervisor_sees_workers(page: Page, dash_server: Server) -> None:
    with psycopg.connect(dash_server.dsn, autocommit=True) as conn:
        supervisor = create_token(conn, Role.SUPERVISOR, "lead")
        scoped = create_token(conn, Role.VIEWER, "plant-a wall", sites=["plant-a"])
    sign_in(page, dash_server, dash_server.viewer_token)
    loaded(page)
    expect(page.get_by_label("What this token may see")).to_have_text(
        "All sites · privacy level pseudonymous · stations and teams only"
    )
    expect(page.get_by_role("heading", name="Workers")).to_have_count(0)
    expect(page.locator("#stations tbody tr[data-id]")).not_to_have_count(0)
    expect(page.locator("#notice")).to_be_hidden()
    shot(page, "privacy-viewer")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, dash_server, supervisor)
    loaded(page)
    expect(page.get_by_label("What this token may see")).to_have_text(
        "All sites · privacy level pseudonymous · per-person figures shown"
    )
    expect(page.locator("#workers tbody tr[data-id]")).to_have_count(6)
    page.get_by_role("button", name="Sign out").click()

    # A token for plant-a only: the site list is its sites; the seed's data (no site) is not its own.
    sign_in(page, dash_server, scoped)
    loaded(page)
    expect(page.get_by_label("What this token may see")).to_have_text(
        "Sites: plant-a · privacy level named · stations and teams only"
    )
    expect(page.locator("#f-site option")).to_contain_text(["plant-a"])
    expect(page.locator("#stations tbody tr[data-id]")).to_have_count(0)
    shot(page, "privacy-site-scoped")
