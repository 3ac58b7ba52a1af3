from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
import yaml
from click.testing import CliRunner

from edge_agent.synthetic import demo_config
from takt.cli import main


def _write(demo: tuple[Path, Path], tmp_path: Path, url: str, site: str = "s-1") -> Path:
    doc = demo_config(*demo, buffer_path=tmp_path / "buf.sqlite", mqtt_url=url)
    doc["site_id"], doc["gateway_id"] = site, "gw-1"
    doc["mqtt"]["connect_timeout_s"] = 5
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_check_passes_with_good_credentials(
    demo_footage: tuple[Path, Path],
    tmp_path: Path,
    site_id: str,
    gateway_url: Callable[[str, str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GW1_MQTT_URL", gateway_url(site_id, "gw-1"))
    config = _write(demo_footage, tmp_path, "${GW1_MQTT_URL}", site_id)
    result = CliRunner().invoke(main, ["edge", "check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    for row in ("config", "camera", "model", "broker", "buffer"):
        assert f"{row}" in result.output
    assert "FAIL" not in result.output
    assert "320x240" in result.output


def test_check_fails_on_wrong_password_and_missing_camera(
    demo_footage: tuple[Path, Path], tmp_path: Path, site_id: str, gateway_url: Callable[[str, str], str]
) -> None:
    url = gateway_url(site_id, "gw-1").replace("gw-1:", "gw-1:wrong", 1)
    config = _write(demo_footage, tmp_path, url, site_id)
    doc = yaml.safe_load(config.read_text())
    doc["camera"]["source"] = str(tmp_path / "missing.avi")
    config.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(main, ["edge", "check", "--config", str(config)])
    assert result.exit_code == 1
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "FAIL" in lines["broker"] and "refused" in lines["broker"]
    assert "FAIL" in lines["camera"]
    assert "PASS" in lines["model"]


def test_invalid_config_prints_locations(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(
        yaml.safe_dump({"site_id": "s", "gateway_id": "g", "camera": {"id": "c", "source": 0, "fps": 5}})
    )
    result = CliRunner().invoke(main, ["edge", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert "camera.fps: Extra inputs are not permitted" in result.output
    assert "stations: Field required" in result.output


def test_snapshot_draws_zones_and_detections(demo_footage: tuple[Path, Path], tmp_path: Path) -> None:
    config = _write(demo_footage, tmp_path, "mqtt://unused@127.0.0.1:1")
    out = tmp_path / "zones.png"
    result = CliRunner().invoke(
        main, ["edge", "snapshot", "--config", str(config), "-o", str(out), "--frames", "60"]
    )
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(out))
    assert image.shape == (240, 320, 3)
    # The zone outline is drawn in pure-ish green on a grey scene.
    assert ((image[:, :, 1] > 180) & (image[:, :, 0] < 60) & (image[:, :, 2] < 60)).sum() > 200
    assert not (tmp_path / "buf.sqlite").exists()  # a snapshot queues nothing for the cloud


def test_make_demo_footage(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["edge", "make-demo-footage", "--out", str(tmp_path), "--duration", "5"]
    )
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "demo.ground_truth.json").read_text())
    assert truth["duration_s"] == 5
    assert yaml.safe_load((tmp_path / "edge.yaml").read_text())["mqtt"]["url"] == "${TAKT_MQTT_URL}"
    capture = cv2.VideoCapture(str(tmp_path / "demo.avi"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 50
    capture.release()
