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

from devstack.demo import REAL_CLIP, REAL_WEIGHTS
from devstack.system import free_port, port_open

pytestmark = pytest.mark.slow


def get_json(url: str, token: str) -> object:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{url}: {exc.code} {exc.read()[:500]!r}") from None


@pytest.mark.parametrize("weights", ["as found", "absent"])
def test_demo_runs_every_role_and_stops_cleanly(weights: str) -> None:
    """With the real weights beside the project, a fourth gateway watches real people; without, not."""
    present = REAL_WEIGHTS.is_file() and REAL_CLIP.is_file()
    if weights == "absent" and not present:
        pytest.skip("the weights are absent here: the 'as found' run is the run without them")
    real = present and weights == "as found"
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
                *(["--real-weights", str(state / "no-such-weights.onnx")] if weights == "absent" else []),
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

        gateways = {"gw-line1", "gw-line2", "gw-line3"} | ({"gw-concourse"} if real else set())
        workers = 6 + (4 if real else 0)
        assert (
            "Real people: gw-concourse runs YOLOX-Nano" if real else "Real people: off"
        ) in log.read_text()
        while time.monotonic() < deadline and (len(live_lines()) < workers or len(online()) < len(gateways)):
            time.sleep(1)
        assert online() == gateways
        assert len(live_lines()) == workers, "every line's workers have events from the edge agents"
        if real:

            def occupied_hours() -> dict[str, float]:
                today = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime())
                rows = get_json(f"{base}/api/metrics/workstations?from={today}", token)
                assert isinstance(rows, list)
                return {
                    r["station_id"]: r["occupancy_time_hours"]
                    for r in rows
                    if r["station_id"].startswith("concourse-") and r["event_count"]
                }

            while time.monotonic() < deadline and not occupied_hours().get("concourse-walkway"):
                time.sleep(1)
            hours = occupied_hours()
            # States from real people: someone walks through the walkway, nobody stands on the empty floor.
            assert hours["concourse-walkway"] > 0 and hours["concourse-empty"] == 0, hours
        factory = get_json(f"{base}/api/metrics/factory", token)
        assert isinstance(factory, dict) and factory["total_events"] > 1000  # seeded history too
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(60)
    assert code == 0, log.read_text()[-3000:]
    assert "demo stopped" in log.read_text()
    assert not any(port_open("127.0.0.1", p) for p in (port, mqtt_port, pg_port))
    shutil.rmtree(state, ignore_errors=True)
