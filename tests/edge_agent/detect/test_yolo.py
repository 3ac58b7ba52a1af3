from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import parse_config
from edge_agent.detect.yolo import OnnxYoloDetector, letterbox
from models.registry import ModelRegistryError, resolve
from tests.edge_agent.onnx_models import register, write_tiny_yolo

CLASSES = ["person", "product", "forklift"]
# cx, cy, w, h in the 320x320 model input, then scores for person, product, forklift.
CANDIDATES = np.array(
    [
        [160, 160, 50, 100, 0.90, 0.0, 0.0],  # a person
        [162, 158, 50, 100, 0.80, 0.0, 0.0],  # the same person again: NMS drops it
        [60, 100, 20, 20, 0.0, 0.70, 0.0],  # a product
        [250, 200, 40, 40, 0.0, 0.0, 0.95],  # a forklift: not a class we asked for
        [100, 250, 30, 30, 0.10, 0.0, 0.0],  # below the confidence threshold
    ],
    dtype=np.float32,
)


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    write_tiny_yolo(d / "tiny.onnx", 320, CANDIDATES)
    register(d, "tiny-yolo", "1", d / "tiny.onnx", CLASSES, 320)
    return d


def test_onnx_runtime_backend_decodes_a_yolo_export_layout(models_dir: Path) -> None:
    manifest, path = resolve(models_dir, "tiny-yolo@1")
    detector = OnnxYoloDetector(manifest, path, frozenset({"person", "product"}))
    frame = np.zeros((480, 640, 3), dtype=np.uint8)  # letterboxed: scale 0.5, 40 px pad top and bottom
    detections = sorted(detector.detect(frame, 0.0), key=lambda d: d.label)
    assert [d.label for d in detections] == ["person", "product"]
    person = detections[0]
    assert person.confidence == pytest.approx(0.9)
    assert person.box == pytest.approx((270, 140, 370, 340))
    assert detections[1].box == pytest.approx((100, 100, 140, 140))
    assert detector.model_version == "tiny-yolo@1"


def test_letterbox_keeps_aspect_and_pads() -> None:
    blob, scale, pad = letterbox(np.full((100, 200, 3), 255, np.uint8), 64)
    assert blob.shape == (1, 3, 64, 64)
    assert scale == pytest.approx(0.32)
    assert pad == (0.0, 16.0)
    assert blob[0, 0, 0, 0] == pytest.approx(114 / 255)  # padding
    assert blob[0, 0, 32, 32] == pytest.approx(1.0)  # image


def test_agent_refuses_a_model_whose_hash_changed(models_dir: Path, tmp_path: Path) -> None:
    from edge_agent.agent import build_detector

    config = parse_config(
        {
            "site_id": "s",
            "gateway_id": "g",
            "camera": {"id": "c", "source": "x.avi"},
            "detector": {"backend": "yolo", "model": "tiny-yolo@1", "models_dir": str(models_dir)},
            "stations": [{"id": "st", "zone": [[0, 0], [1, 0], [1, 1]], "normalized": True}],
            "mqtt": {"url": "mqtt://a:b@localhost:1883"},
        }
    )
    assert build_detector(config).model_version == "tiny-yolo@1"
    with (models_dir / "tiny.onnx").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelRegistryError, match="differs from the manifest"):
        build_detector(config)


def test_ultralytics_backend_runs_an_architecture_only_model(tmp_path: Path) -> None:
    ultralytics = pytest.importorskip(
        "ultralytics", reason="ultralytics (torch) is not installed in this env"
    )
    from edge_agent.detect.yolo import UltralyticsDetector
    from models.registry import ModelManifest, sha256_file

    model = ultralytics.YOLO("yolo11n.yaml")  # built offline from the architecture config
    path = tmp_path / "yolo11n.pt"
    model.save(str(path))
    manifest = ModelManifest(
        name="yolo11n-arch",
        version="0",
        format="pt",
        path=path,
        sha256=sha256_file(path),
        classes=[str(model.names[i]) for i in range(len(model.names))],
        input_size=320,
        confidence=0.0,
    )
    detector = UltralyticsDetector(manifest, path, frozenset({"person"}))
    detections = detector.detect(np.zeros((240, 320, 3), np.uint8), 0.0)
    assert all(d.label == "person" for d in detections)


def test_agent_runs_the_onnx_backend_end_to_end(models_dir: Path, tmp_path: Path) -> None:
    from edge_agent.agent import Agent
    from edge_agent.sources import Frame
    from takt.contract import EventType

    config = parse_config(
        {
            "site_id": "s",
            "gateway_id": "g",
            "camera": {"id": "c", "source": "x.avi"},
            "detector": {"backend": "yolo", "model": "tiny-yolo@1", "models_dir": str(models_dir)},
            # The model always sees a person centred at (320, 240) of a 640x480 frame.
            "stations": [
                {"id": "st", "zone": [[200, 100], [440, 100], [440, 400], [200, 400]], "idle_after_s": 1}
            ],
            "mqtt": {"url": "mqtt://a:b@localhost:1883"},
            "buffer": {"path": str(tmp_path / "b.sqlite")},
        }
    )
    agent = Agent(config)
    frame = np.zeros((480, 640, 3), dtype=np.uint8)
    events = []
    for i in range(10):
        events += agent.process_frame(Frame(frame, 1_800_000_000.0 + i * 0.5, i))
    events += agent.finish()
    assert {e.model_version for e in events} == {"tiny-yolo@1"}
    # A person who never moves: idle for the whole 4.5 s observed.
    idle = sum(e.duration_s or 0 for e in events if e.event_type is EventType.IDLE)
    assert idle == pytest.approx(4.5)
    assert agent.tracker is not None and agent.last_detections[0].track_id is not None
