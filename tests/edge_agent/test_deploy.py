from __future__ import annotations

from pathlib import Path

import yaml

from edge_agent.config import parse_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_example_config_is_valid() -> None:
    config = parse_config(yaml.safe_load((DEPLOY / "edge.example.yaml").read_text()), "edge.example.yaml")
    assert config.mqtt.url_env == "TAKT_MQTT_URL"
    assert config.detector.model == "person-yolox-nano@2026.12.1"
    assert config.detector.tiling.grid == 1  # off unless asked
    # Two cameras, each with its own stations; one buffer and one MQTT connection.
    assert [(v.single_camera.id, len(v.stations)) for v in config.views()] == [
        ("cam-line1", 2),
        ("cam-line2", 1),
    ]


def test_the_commented_tiling_example_is_valid_once_uncommented() -> None:
    lines = (DEPLOY / "edge.example.yaml").read_text().splitlines()
    block = ("  # tiling:", "  #   grid: 2", "  #   overlap: 0.2", "  #   full_frame: true")
    start = lines.index(block[0])
    assert tuple(lines[start : start + 4]) == block
    lines[start : start + 4] = [line.replace("# ", "", 1) for line in block]
    text = "\n".join(lines)
    config = parse_config(yaml.safe_load(text), "edge.example.yaml")
    assert (config.detector.tiling.grid, config.detector.tiling.overlap) == (2, 0.2)


def test_the_commented_gating_example_is_valid_once_uncommented_and_states_the_defaults() -> None:
    lines = (DEPLOY / "edge.example.yaml").read_text().splitlines()
    start = lines.index("  # gating:")
    end = start + 1
    while lines[end].startswith("  #   "):
        end += 1
    lines[start:end] = [line.replace("# ", "", 1) for line in lines[start:end]]
    doc = yaml.safe_load("\n".join(lines))
    config = parse_config(doc, "edge.example.yaml")
    defaults = type(config.detector.gating)().model_dump()
    assert doc["detector"]["gating"] == defaults  # every field, each at its default


def test_unit_runs_the_agent_with_secrets_from_the_env_file() -> None:
    unit = (DEPLOY / "takt-edge.service").read_text()
    assert "ExecStart=/opt/takt/.venv/bin/takt edge run --config /etc/takt/edge.yaml" in unit
    assert "EnvironmentFile=/etc/takt/edge.env" in unit
    assert "TAKT_MQTT_URL=" in (DEPLOY / "takt-edge.env.example").read_text()
