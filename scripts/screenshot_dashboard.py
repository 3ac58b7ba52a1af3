"""Screenshot of the dashboard with demo data, for the README (docs/images/dashboard.png).

Starts its own PostgreSQL (the dev-stack class the tests use) and the API with
the dashboard in a private temporary folder, loads the demo data from the UI
as an admin would, and photographs the page in headless Chromium (Debian's
package). Run: .venv/bin/python scripts/screenshot_dashboard.py [OUT.png]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import uvicorn
from playwright.sync_api import expect, sync_playwright

from api.app import create_app
from api.settings import ApiSettings
from collector.db import upgrade
from takt.devstack import PostgresServer
from takt.devstack.system import ensure_services_installed, free_port

ROOT = Path(__file__).resolve().parents[1]
TOKEN = secrets.token_urlsafe(16)  # this run only
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
GATEWAYS = [
    ("gw-line1", "online", {"fps": 14.9, "backlog": 0, "oldest_buffered_age_s": 0, "replaying": False,
                            "model_version": "person-yolo11n@2026.11.1", "camera_state": "ok"}),
    ("gw-line2", "online", {"fps": 12.1, "backlog": 1840, "oldest_buffered_age_s": 410, "replaying": True,
                            "model_version": "person-yolo11n@2026.11.1", "camera_state": "ok"}),
    ("gw-pack", "offline", {"fps": 0, "backlog": 95, "oldest_buffered_age_s": 1260, "replaying": False,
                            "model_version": "motion@1", "camera_state": "lost"}),
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "docs" / "images" / "dashboard.png")
    args = parser.parse_args()
    ensure_services_installed()
    root = Path(tempfile.mkdtemp(prefix="takt-shot-"))
    root.chmod(0o755)
    pg = PostgresServer(root / "postgres", free_port(), durable=False)
    pg.start()
    try:
        dsn = pg.create_database("takt_shot", exist_ok=True)
        upgrade(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for gw, state, status in GATEWAYS:
                conn.execute(
                    "INSERT INTO gateways (gateway_id, site_id, state, last_seen, status) "
                    "VALUES (%s, 'site-1', %s, now() - %s * interval '1 second', %s)",
                    (gw, state, 5 if state == "online" else 3600, json.dumps(status)),
                )
        settings = ApiSettings(database_url=dsn, admin_token=TOKEN, refresh_interval_s=0.5)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                               log_level="warning", timeout_graceful_shutdown=3))  # fmt: skip
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            shoot(f"http://127.0.0.1:{port}/", args.out)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    finally:
        pg.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)
    print(f"wrote {args.out}")


def shoot(url: str, out: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768}, timezone_id="UTC")
        page.goto(url)
        page.get_by_label("Access token").fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Load demo data").click()
        expect(page.locator("#workers tbody tr[data-id]")).to_have_count(6)
        expect(page.locator('[data-metric="total_production_count"] .value')).not_to_have_attribute(
            "data-value", "0"
        )
        expect(page.locator("#live")).to_have_text("Live")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
