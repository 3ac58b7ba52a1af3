from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.config import ConfigError, load_config, parse_config


def base(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "site_id": "plant-1",
        "gateway_id": "gw-1",
        "camera": {"id": "cam-1", "source": "clip.avi"},
        "stations": [{"id": "st-1", "zone": [[0, 0], [0.5, 0], [0.5, 1]], "normalized": True}],
        "mqtt": {"url": "mqtt://gw-1:secret@broker:1883"},
    }
    doc.update(over)
    return doc


def test_minimal_config_parses_with_defaults() -> None:
    config = parse_config(base())
    assert config.detector.backend == "motion"
    assert config.buffer.synchronous == "FULL"


@pytest.mark.parametrize(
    ("doc", "location"),
    [
        (base(camera={"id": "cam-1", "source": "a.avi", "fsp": 5}), "camera.fsp"),
        (base(stations=[{"id": "st-1", "zone": [[0, 0], [1, 1]]}]), "stations.0.zone"),
        (base(detector={"backend": "yolo"}), "detector"),
        (base(mqtt={"url": "mqtt://x", "url_env": "X"}), "mqtt"),
        (base(gateway_id="gw/1"), "gateway_id"),
        (
            base(count_lines=[{"id": "l", "station_id": "nope", "points": [[0, 0], [1, 1]]}]),
            "unknown station",
        ),
    ],
)
def test_errors_name_their_location(doc: dict[str, Any], location: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(doc, "edge.yaml")
    assert location in str(err.value)
    assert str(err.value).startswith("edge.yaml")


def test_mqtt_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_URL", "mqtt://gw-1:pw@h:1883")
    monkeypatch.setenv("GW_PW", "s3cret")
    assert parse_config(base(mqtt={"url_env": "GW_URL"})).mqtt.resolved_url() == "mqtt://gw-1:pw@h:1883"
    templated = parse_config(base(mqtt={"url": "mqtt://gw-1:${GW_PW}@h:1883"}))
    assert templated.mqtt.resolved_url() == "mqtt://gw-1:s3cret@h:1883"
    monkeypatch.delenv("GW_PW")
    with pytest.raises(ConfigError, match="GW_PW"):
        templated.mqtt.resolved_url()


def test_config_version_tracks_zones_and_thresholds_only() -> None:
    v1 = parse_config(base()).config_version()
    assert len(v1) == 12
    assert parse_config(base(mqtt={"url": "mqtt://other@h"})).config_version() == v1
    moved = base(stations=[{"id": "st-1", "zone": [[0, 0], [0.6, 0], [0.6, 1]], "normalized": True}])
    assert parse_config(moved).config_version() != v1
    stricter = base(
        stations=[{"id": "st-1", "zone": [[0, 0], [0.5, 0], [0.5, 1]], "normalized": True, "idle_after_s": 9}]
    )
    assert parse_config(stricter).config_version() != v1


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    doc = base(buffer={"path": "state/buffer.sqlite"})
    (tmp_path / "edge.yaml").write_text(yaml.safe_dump(doc))
    config = load_config(tmp_path / "edge.yaml")
    assert config.buffer.path == tmp_path / "state" / "buffer.sqlite"
    assert config.camera.source == str(tmp_path / "clip.avi")


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    (tmp_path / "edge.yaml").write_text("site_id: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(tmp_path / "edge.yaml")
