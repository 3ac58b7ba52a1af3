"""Screenshots of the dashboard with demo data, for the README (docs/images/).

Starts its own PostgreSQL (the dev-stack class the tests use) and the API with
the dashboard in a private temporary folder, loads the demo data from the UI
as an admin would, and photographs in headless Chromium (Debian's package):
the main view (dashboard.png), a worker's drill-down on the last demo day
(drill-down.png) and the model versions panel (models-panel.png). For that
panel it adds a shadow candidate's opinion of the demo events and one drift
flag. Run: .venv/bin/python scripts/screenshot_dashboard.py [OUT_DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import uvicorn
from playwright.sync_api import expect, sync_playwright

from api.app import create_app
from api.settings import ApiSettings
from devstack import PostgresServer
from devstack.system import ensure_services_installed, free_port
from takt.contract import Event
from takt.store.db import upgrade
from takt.store.events import write_events

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
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "docs" / "images", help="folder")
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
            shoot(f"http://127.0.0.1:{port}/", args.out, dsn)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    finally:
        pg.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)
    for name in SHOTS:
        print(f"wrote {args.out / name}")


SHOTS = ("dashboard.png", "drill-down.png", "models-panel.png")
CANDIDATE = "person-yolo11n@2026.12.1-rc1"


def add_shadow_candidate(dsn: str) -> None:
    """A shadow candidate's opinion of the demo's events (less sure of itself), and a drift flag."""
    rng = random.Random(3)  # noqa: S311 - demo data, not secrets
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT ts, worker_id, station_id, event_type, confidence, count, duration_s "
            "FROM events WHERE NOT shadow"
        ).fetchall()
        events = [
            Event.model_validate(
                {
                    "event_id": str(uuid.uuid4()),
                    "timestamp": ts,
                    "worker_id": worker,
                    "station_id": station,
                    "event_type": kind,
                    "confidence": round(max(0.3, min(1.0, float(conf) - rng.uniform(0.05, 0.25))), 3),
                    # The candidate misses a part now and then.
                    "count": max(0, count - (rng.random() < 0.15)) if kind == "product_count" else 0,
                    "duration_s": duration,
                    "model_version": CANDIDATE,
                    "shadow": True,
                }
            )
            for ts, worker, station, kind, conf, count, duration in rows
            if kind != "product_count" or count > 0
        ]
        write_events(conn, events)
        conn.execute(
            "INSERT INTO drift_flags (checked_at, site_id, subject_kind, subject_id, metric, value, "
            "threshold, baseline_from, baseline_to, recent_from, recent_to) VALUES "
            "(now(), 'site-1', 'station', 'S3', 'confidence_psi', 0.27, 0.2, "
            "now() - interval '8 days', now() - interval '1 day', now() - interval '1 day', now())"
        )
        conn.commit()


def shoot(url: str, out: Path, dsn: str) -> None:
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
        expect(page.locator("#models tbody tr[data-model]")).to_have_count(1, timeout=30_000)
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / "dashboard.png"), full_page=True)

        # The drill-down of the first worker on the last demo day (yesterday, the site's day).
        page.locator("#workers tbody tr[data-id] th button").first.click()
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        page.locator("#drill-day").fill(yesterday)
        page.locator("#drill-day").dispatch_event("change")
        page.locator("#drill-day").blur()
        expect(page.locator("#timeline .seg.working").first).to_be_attached()
        expect(page.locator("#chart-units .uplot")).to_be_attached()
        expect(page.locator("#chart-util .uplot")).to_be_attached()
        expect(page.locator("#recent tbody tr[data-event]").first).to_be_attached()
        page.locator("#drill").screenshot(path=str(out / "drill-down.png"))
        page.locator("#drill-close").click()

        add_shadow_candidate(dsn)
        expect(page.locator("#models tbody tr[data-model]")).to_have_count(2, timeout=30_000)
        expect(page.locator("#drift-flags li")).to_have_count(1)
        panel = page.locator("section:has(#models)")
        panel.scroll_into_view_if_needed()
        panel.screenshot(path=str(out / "models-panel.png"))
        browser.close()


if __name__ == "__main__":
    main()
