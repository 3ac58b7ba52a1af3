"""`takt demo` as a user runs it: every role up, live events stored, a clean stop."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from devstack.system import free_port, port_open

pytestmark = pytest.mark.slow


def get_json(url: str, token: str) -> object:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{url}: {exc.code} {exc.read()[:500]!r}") from None


def test_demo_runs_every_role_and_stops_cleanly() -> None:
    state = Path(tempfile.mkdtemp(prefix="takt-demo-"))
    port, mqtt_port, pg_port = free_port(), free_port(), free_port()
    log = state / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "takt.cli",
                "demo",
                "--state-dir",
                str(state),
                "--port",
                str(port),
                "--mqtt-port",
                str(mqtt_port),
                "--pg-port",
                str(pg_port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        token = None
        deadline = time.monotonic() + 180
        while token is None and time.monotonic() < deadline and demo.poll() is None:
            found = re.search(r"Login token: (\S+)", log.read_text())
            token = found.group(1) if found else None
            time.sleep(0.5)
        assert token, log.read_text()[-3000:]
        assert f"Dashboard:   http://127.0.0.1:{port}/" in log.read_text()
        base = f"http://127.0.0.1:{port}"

        def live_lines() -> set[str]:
            today = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime())
            workers = get_json(f"{base}/api/metrics/workers?from={today}", token)
            assert isinstance(workers, list)
            return {w["worker_id"] for w in workers if w["worker_id"].startswith("w-") and w["event_count"]}

        def online() -> set[str]:
            gateways = get_json(f"{base}/api/gateways", token)
            assert isinstance(gateways, list)
            return {g["gateway_id"] for g in gateways if g["state"] == "online"}

        while time.monotonic() < deadline and (len(live_lines()) < 6 or len(online()) < 3):
            time.sleep(1)
        assert online() == {"gw-line1", "gw-line2", "gw-line3"}
        assert len(live_lines()) == 6, "every line's workers have events from the edge agents"
        factory = get_json(f"{base}/api/metrics/factory", token)
        assert isinstance(factory, dict) and factory["total_events"] > 1000  # seeded history too
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(60)
    assert code == 0, log.read_text()[-3000:]
    assert "demo stopped" in log.read_text()
    assert not any(port_open("127.0.0.1", p) for p in (port, mqtt_port, pg_port))
    shutil.rmtree(state, ignore_errors=True)
