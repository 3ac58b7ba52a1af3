"""`takt collector` start-up checks."""

from __future__ import annotations

import os
import subprocess
import sys

from takt.store.db import upgrade


def _run_collector(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "takt.cli", "collector"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_refuses_an_outdated_schema(fresh_database: str, collector_mqtt_url: str) -> None:
    result = _run_collector({"TAKT_DATABASE_URL": fresh_database, "TAKT_MQTT_URL": collector_mqtt_url})
    assert result.returncode != 0
    assert "takt db upgrade" in result.stderr


def test_stops_on_refused_broker_credentials(fresh_database: str, collector_mqtt_url: str) -> None:
    upgrade(fresh_database)
    bad_url = collector_mqtt_url.replace("://collector:", "://collector:wrong")
    result = _run_collector(
        {"TAKT_DATABASE_URL": fresh_database, "TAKT_MQTT_URL": bad_url, "TAKT_COLLECTOR_METRICS_PORT": "0"}
    )
    assert result.returncode != 0
    assert "broker refused the collector" in result.stderr


def test_collector_is_a_takt_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "takt.cli", "collector", "--help"], capture_output=True, text=True, check=True
    )
    assert "commit acks" in result.stdout
