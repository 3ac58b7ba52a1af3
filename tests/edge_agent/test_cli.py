from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
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


def _snap(config: Path, out: Path, *extra: str) -> tuple[np.ndarray, str]:
    result = CliRunner().invoke(
        main, ["edge", "snapshot", "--config", str(config), "-o", str(out), "--frames", "60", *extra]
    )
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(out))
    assert image is not None
    return image, result.output


def _person_interiors(config: Path, frames: int = 60) -> list[tuple[int, int, int, int]]:
    """Where the agent sees people on the snapshot's frame, shrunk inside the drawn outline."""
    import tempfile

    from edge_agent.agent import Agent
    from edge_agent.buffer import EventBuffer
    from edge_agent.config import load_config
    from edge_agent.sources import Frame, VideoSource

    cfg = load_config(config)
    with tempfile.TemporaryDirectory() as tmp:
        agent = Agent(cfg, buffer=EventBuffer(Path(tmp) / "b.sqlite"))
        for item in VideoSource(cfg.camera).frames(threading.Event()):
            if isinstance(item, Frame):
                agent.process_frame(item)
                if agent.frames >= frames:
                    break
    return [
        (round(d.box[0]) + 4, round(d.box[1]) + 4, round(d.box[2]) - 4, round(d.box[3]) - 4)
        for d in agent.last_detections
        if d.label == cfg.detector.person_label and d.box[2] - d.box[0] > 12 and d.box[3] - d.box[1] > 12
    ]


def _edges(image: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> float:
    """Sharp detail inside the boxes: summed squared differences of vertical neighbours
    (a blur spreads a step over k pixels and divides this by k)."""
    return sum(float((np.diff(image[b:d, a:c].astype(float), axis=0) ** 2).sum()) for a, b, c, d in boxes)


def test_snapshot_blurs_people_unless_told_not_to(demo_footage: tuple[Path, Path], tmp_path: Path) -> None:
    config = _write(demo_footage, tmp_path, "mqtt://unused@127.0.0.1:1")
    blurred, said = _snap(config, tmp_path / "blurred.png")
    raw, said_raw = _snap(config, tmp_path / "raw.png", "--no-blur")
    assert "people blurred" in said and "people not blurred" in said_raw
    people = _person_interiors(config)
    assert people, "the synthetic scene has a worker at a station after 12 s"
    # The worker's outline, head, arm and sensor grain: edges, gone once blurred.
    assert _edges(blurred, people) < _edges(raw, people) / 3
    # Away from people (and the overlay), both pictures are the same frame.
    assert np.array_equal(blurred[-20:, :150], raw[-20:, :150])


def test_snapshot_of_the_real_clip_leaves_no_person_recognisable(
    shared_footage: Path, tmp_path: Path
) -> None:
    from tests.conftest import SHARED_DIR

    weights = SHARED_DIR / "models" / "yolox_nano.onnx"
    if not weights.exists():
        pytest.skip(f"YOLOX-Nano weights not present at {weights}")
    from edge_agent.concourse import concourse_config

    reg = tmp_path / "models"
    registered = CliRunner().invoke(
        main, ["models", "register", str(weights), "--name", "yolox-nano", "--version", "1",
               "--models-dir", str(reg), "--no-copy"],
    )  # fmt: skip
    assert registered.exit_code == 0, registered.output
    doc = concourse_config(
        shared_footage, models_dir=reg, model="yolox-nano@1", mqtt_url="mqtt://u@127.0.0.1:1",
        buffer_path=tmp_path / "b.sqlite", tiling=False,
    )  # fmt: skip
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump(doc))
    blurred, _ = _snap(config, tmp_path / "blurred.png", "--frames", "1")
    raw, _ = _snap(config, tmp_path / "raw.png", "--frames", "1", "--no-blur")
    people = _person_interiors(config, frames=1)
    assert len(people) >= 10  # a busy concourse

    # Edges (faces, limbs, clothing) are what makes a person recognisable: they are gone. Summed
    # over everyone, as the overlay's labels of neighbours may fall inside a box in both pictures.
    assert _edges(blurred, people) < _edges(raw, people) / 3
