""" "Working now" against ground truth, real processes only: a motion-backend edge agent on generated
footage -> Mosquitto -> `takt collector` -> PostgreSQL -> the API's /api/now.

The footage's ground truth says, frame by frame, who is working. While the agent plays the clip in
real time, the test asks the API who is working now, over and over; every answer given at a moment
when the truth was steady (no change in the last seconds the pipeline may lag behind) must name
exactly the workers the truth has working.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from edge_agent.synthetic import demo_config, render
from tests.collector.conftest import CollectorProcess

pytestmark = [pytest.mark.slow, pytest.mark.wallclock]
GATEWAY = "gw-now"
CLIP_S = 100.0
WORKERS = {"st-1": "w-ana", "st-2": "w-ben"}
# How far the API may trail the footage: the agent's start-up (its frames are stamped from the
# start time the test gives it), the longest dwell before a state is certain (3 s), delivery.
LAG_S = 15.0


def _working_at(truth: dict[str, Any], offset_s: float) -> set[str]:
    out: set[str] = set()
    for station, data in truth["stations"].items():
        seg = next((s for s in data["segments"] if s["start_s"] <= offset_s < s["end_s"]), None)
        if seg is not None and seg["state"] == "working":
            out.add(WORKERS[station])
    return out


def test_working_now_matches_the_footage_ground_truth(
    tmp_path: Path,
    site_id: str,
    gateway_url: Callable[[str, str], str],
    collector_process: Callable[..., CollectorProcess],
    database: str,
) -> None:
    video, truth_path = render(tmp_path / "footage", seed=2, duration_s=CLIP_S, cycle_s=(30.0, 50.0))
    truth = json.loads(truth_path.read_text())
    collector = collector_process()
    collector.start()

    start = datetime.now(UTC) + timedelta(seconds=2)
    doc = demo_config(
        video, truth_path, buffer_path=tmp_path / "buffer.sqlite", mqtt_url=gateway_url(site_id, GATEWAY)
    )
    doc.update(site_id=site_id, gateway_id=GATEWAY)
    doc["camera"].update(realtime=True, start_time=start.isoformat())
    doc["roster"] = [
        {"station_id": st, "worker_id": w, "start": a, "end": b}
        for st, w in WORKERS.items()
        for a, b in (("00:00:00", "12:00:00"), ("12:00:00", "00:00:00"))
    ]
    doc["mqtt"].update({"ack_timeout_s": 2, "heartbeat_s": 1})
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump(doc))
    with (tmp_path / "agent.log").open("ab") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "takt.cli", "edge", "run", "--config", str(config), "--exit-at-end"],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    settings = ApiSettings(database_url=database, admin_token="t", refresh_interval_s=0)
    samples: list[tuple[datetime, set[str], int]] = []
    try:
        with TestClient(create_app(settings), headers={"Authorization": "Bearer t"}) as client:
            while agent.poll() is None:
                asked = datetime.now(UTC)
                body = client.get("/api/now").json()
                samples.append((asked, {w["worker_id"] for w in body["working"]}, body["active_workers"]))
                time.sleep(0.5)
    finally:
        if agent.poll() is None:
            agent.kill()
        agent.wait(30)
    assert agent.returncode == 0, (tmp_path / "agent.log").read_text()[-3000:]

    steady = []
    for asked, working, count in samples:
        offset = (asked - start).total_seconds()
        if offset > CLIP_S:
            continue
        window = {frozenset(_working_at(truth, offset - d / 2)) for d in range(0, int(2 * LAG_S) + 1)}
        window.add(frozenset(_working_at(truth, offset + 1)))
        if len(window) == 1:
            steady.append((offset, working, count, set(window.pop())))
    assert len(steady) >= 20, f"too few steady moments: {len(steady)} of {len(samples)}"
    wrong = [(round(o, 1), got, want) for o, got, n, want in steady if got != want or n != len(want)]
    assert not wrong, f"/api/now disagrees with the ground truth at (offset, api, truth): {wrong}"
    # The clip has moments with nobody, one and both working: each must have been seen steady.
    assert {len(want) for *_, want in steady} >= {1, 2}, steady
