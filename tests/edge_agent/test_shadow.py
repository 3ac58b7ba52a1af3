from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge_agent.agent import Agent
from edge_agent.config import ConfigError, parse_config
from edge_agent.detect.base import Detection, Image
from models.registry import ModelRegistryError
from takt.contract import Event, EventType
from tests.models.footage import CANDIDATE, PRODUCTION, edge_config, run_offline, two_version_events


def _outcome(events: list[Event]) -> list[tuple[object, ...]]:
    return [(e.timestamp, e.station_id, e.event_type, e.duration_s, e.count, e.confidence) for e in events]


def test_shadow_candidate_runs_on_the_same_frames_without_touching_production(tmp_path: Path) -> None:
    both = two_version_events(tmp_path / "a")
    production = [e for e in both if not e.shadow]
    shadow = [e for e in both if e.shadow]
    # One per-gateway sequence through one buffer: no gaps, no duplicates.
    assert [e.seq for e in both] == list(range(1, len(both) + 1))
    assert {e.model_version for e in production} == {PRODUCTION}
    assert {e.model_version for e in shadow} == {CANDIDATE}
    assert shadow and production
    assert {e.config_version for e in production}.isdisjoint({e.config_version for e in shadow})
    # The candidate misses the parts: its counts differ, so the comparison has something to show.
    assert sum(e.count for e in production) > 0
    assert sum(e.count for e in shadow) == 0
    assert {e.event_type for e in shadow} >= {EventType.WORKING, EventType.ABSENT}
    # Production events are exactly those of an agent running without the candidate.
    alone = Agent(parse_config(edge_config(tmp_path / "b", shadow=False)))
    assert alone.shadow_agent is None
    assert _outcome(production) == _outcome(run_offline(alone))


class Exploding:
    model_version = "broken@0"
    tracks = False
    closed = False

    def detect(self, frame: Image, timestamp_s: float) -> list[Detection]:
        raise RuntimeError("candidate crashed")

    def close(self) -> None:
        self.closed = True


def test_a_failing_candidate_is_switched_off_and_production_goes_on(tmp_path: Path) -> None:
    broken = Exploding()
    agent = Agent(parse_config(edge_config(tmp_path, seconds=20)), shadow_detector=broken)
    assert agent.status_fields()["shadow_model_version"] == "broken@0"
    events = run_offline(agent)
    assert events and not any(e.shadow for e in events)
    assert agent.shadow_agent is None and broken.closed
    status = agent.status_fields()
    assert status["shadow_error"] == "RuntimeError: candidate crashed"
    assert "shadow_model_version" not in status
    assert status["model_version"] == PRODUCTION


def test_shadow_config_is_checked(tmp_path: Path) -> None:
    config = edge_config(tmp_path, seconds=2)
    nested = {**config["detector"]["shadow"], "shadow": {"backend": "motion"}}
    with pytest.raises(ConfigError, match="cannot have a shadow"):
        parse_config({**config, "detector": {**config["detector"], "shadow": nested}})
    # A motion backend refuses a manifest of another format (and so a yolo backend a motion file).
    wrong = {**config["detector"], "backend": "yolo"}
    with pytest.raises(ModelRegistryError, match="motion model; the yolo backend needs"):
        Agent(parse_config({**config, "detector": wrong}))


def test_edge_check_verifies_the_shadow_model_too(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from takt.cli import main

    doc = edge_config(tmp_path, seconds=2)
    doc["mqtt"] = {"url": "mqtt://gw:pw@127.0.0.1:1", "connect_timeout_s": 0.5}
    (tmp_path / "models" / "person-motion-2026.11.2.motion").write_text("var_threshold: 1\n")  # tampered
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(main, ["edge", "check", "--config", str(config)])
    assert result.exit_code == 1
    lines = {line.split("  ")[0].strip(): line for line in result.output.splitlines() if line.strip()}
    assert "PASS" in lines["model"] and PRODUCTION in lines["model"]
    assert "FAIL" in lines["shadow model"] and "refusing" in lines["shadow model"]
