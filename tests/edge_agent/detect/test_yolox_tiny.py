"""The YOLOX decoding path on a tiny YOLOX-layout ONNX model built here: no weights needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge_agent.config import parse_config
from edge_agent.detect.yolo import OnnxYoloDetector
from models.onnx_info import COCO_CLASSES
from models.registry import resolve
from takt.cli import main
from tests.edge_agent.onnx_models import write_tiny_yolox

SIZE = 320
CAR = COCO_CLASSES.index("car")


def _row(cx: float, cy: float, w: float, h: float, objectness: float, **scores: float) -> list[float]:
    classes = [0.0] * len(COCO_CLASSES)
    for name, value in scores.items():
        classes[COCO_CLASSES.index(name)] = value
    return [cx, cy, w, h, objectness, *classes]


BOXES = np.array(
    [
        _row(160, 120, 40, 80, 0.9, person=1.0),  # a person: score 0.9 x 1.0
        _row(168, 124, 40, 80, 0.8, person=0.9),  # the same person again: NMS drops it
        _row(60, 60, 30, 30, 0.9, car=0.95),  # a car: not a class we asked for
        _row(260, 40, 20, 40, 0.5, person=0.4),  # score 0.2: below the threshold
    ],
    dtype=np.float32,
)
BLUE = np.zeros((480, 640, 3), np.uint8)
BLUE[..., 0] = 255  # BGR
# The model's objectness factor: the mean of channel 0 of the letterboxed input over 255. The
# 640x480 frame fills 320x240 of it; the rest is padding of 114.
BLUE_FACTOR = (240 * 255 + 80 * 114) / 320 / 255


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    source = tmp_path / "tiny-yolox.onnx"
    write_tiny_yolox(source, SIZE, BOXES, objectness_from_blue=True)
    reg = tmp_path / "models"
    result = CliRunner().invoke(
        main,
        [
            "models",
            "register",
            str(source),
            "--name",
            "tiny-yolox",
            "--version",
            "1",
            "--models-dir",
            str(reg),
        ],
    )
    assert result.exit_code == 0, result.output
    return reg


def test_register_reads_the_yolox_layout_from_the_file(models_dir: Path) -> None:
    manifest, _ = resolve(models_dir, "tiny-yolox@1")
    assert (manifest.layout, manifest.input_size, manifest.colors) == ("yolox", SIZE, "bgr")
    assert manifest.classes == COCO_CLASSES


def test_yolox_rows_are_decoded_scored_and_mapped_back_to_the_frame(models_dir: Path) -> None:
    manifest, path = resolve(models_dir, "tiny-yolox@1")
    detector = OnnxYoloDetector(manifest, path, frozenset({"person"}), confidence=0.3)
    (person,) = detector.detect(BLUE, 0.0)
    assert person.label == "person"
    # Objectness x class score (0.9 x 1.0), the objectness scaled by the model's blue factor.
    assert person.confidence == pytest.approx(0.9 * BLUE_FACTOR, abs=1e-4)
    # 640x480 into 320: scale 0.5, letterboxed into the top-left corner (no offset), so the
    # cell's (160, 120, 40x80) is (280, 160)-(360, 320) in the frame. Centred it would be 80 px higher.
    assert person.box == pytest.approx((280, 160, 360, 320), abs=1e-3)
    both = OnnxYoloDetector(manifest, path, frozenset({"person", "car"}), confidence=0.3)
    assert sorted(d.label for d in both.detect(BLUE, 0.0)) == ["car", "person"]


@pytest.mark.parametrize(
    "prep",
    [
        {"corner": True, "bgr": False, "unit_scale": False},  # RGB: channel 0 is red, here 0
        {"corner": True, "bgr": True, "unit_scale": True},  # 0-1: objectness 255x too small
    ],
)
def test_the_test_model_sees_when_the_preprocessing_is_not_yolox(
    models_dir: Path, prep: dict[str, bool]
) -> None:
    manifest, path = resolve(models_dir, "tiny-yolox@1")
    detector = OnnxYoloDetector(manifest, path, frozenset({"person"}), confidence=0.3)
    detector._prep = prep
    assert detector.detect(BLUE, 0.0) == []


def test_the_agent_runs_a_yolox_model_end_to_end(models_dir: Path, tmp_path: Path) -> None:
    from edge_agent.agent import Agent
    from edge_agent.sources import Frame
    from takt.contract import EventType

    config = parse_config(
        {
            "site_id": "s",
            "gateway_id": "g",
            "camera": {"id": "c", "source": "x.avi"},
            "detector": {
                "backend": "yolo",
                "model": "tiny-yolox@1",
                "models_dir": str(models_dir),
                "product_labels": [],
            },
            "stations": [
                {"id": "here", "zone": [[250, 150], [400, 150], [400, 420], [250, 420]], "idle_after_s": 1},
                {"id": "empty", "zone": [[450, 300], [630, 300], [630, 470], [450, 470]]},
            ],
            "mqtt": {"url": "mqtt://a:b@localhost:1883"},
            "buffer": {"path": str(tmp_path / "b.sqlite")},
        }
    )
    agent = Agent(config)
    events = []
    for i in range(10):
        events += agent.process_frame(Frame(BLUE, 1_800_000_000.0 + i * 0.5, i))
    events += agent.finish()
    seconds = {
        (e.station_id, e.event_type): e.duration_s for e in events if e.duration_s and e.duration_s > 0
    }
    assert seconds == {
        ("here", EventType.IDLE): pytest.approx(4.5),
        ("empty", EventType.ABSENT): pytest.approx(4.5),
    }
    assert {e.model_version for e in events} == {"tiny-yolox@1"}
