from __future__ import annotations

from pathlib import Path

import yaml

from edge_agent.config import parse_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_example_config_is_valid() -> None:
    config = parse_config(yaml.safe_load((DEPLOY / "edge.example.yaml").read_text()), "edge.example.yaml")
    assert config.mqtt.url_env == "TAKT_MQTT_URL"
    assert config.detector.model == "person-yolo11n@2026.11.1"
    # Two cameras, each with its own stations; one buffer and one MQTT connection.
    assert [(v.single_camera.id, len(v.stations)) for v in config.views()] == [
        ("cam-line1", 2),
        ("cam-line2", 1),
    ]


def test_unit_runs_the_agent_with_secrets_from_the_env_file() -> None:
    unit = (DEPLOY / "takt-edge.service").read_text()
    assert "ExecStart=/opt/takt/.venv/bin/takt edge run --config /etc/takt/edge.yaml" in unit
    assert "EnvironmentFile=/etc/takt/edge.env" in unit
    assert "TAKT_MQTT_URL=" in (DEPLOY / "takt-edge.env.example").read_text()
