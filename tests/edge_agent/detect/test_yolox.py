"""The real YOLOX-Nano weights on the real concourse clip (both read from ../shared, skipped where absent)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent import EdgeError
from edge_agent.config import TilingConfig
from edge_agent.detect.yolo import OnnxYoloDetector, tile_windows
from models.onnx_info import COCO_CLASSES, inspect_onnx
from models.registry import ModelManifest, sha256_file
from tests.conftest import SHARED_DIR

YOLOX = SHARED_DIR / "models" / "yolox_nano.onnx"


@pytest.fixture(scope="module")
def yolox() -> Path:
    if not YOLOX.exists():
        pytest.skip(f"YOLOX-Nano weights not present at {YOLOX}")
    return YOLOX


def _manifest(path: Path, **over: object) -> ModelManifest:
    fields: dict[str, object] = {
        "name": "yolox-nano",
        "version": "1",
        "format": "onnx",
        "path": path.resolve(),
        "sha256": sha256_file(path),
        "classes": COCO_CLASSES,
        "input_size": 416,
        "layout": "yolox",
        "confidence": 0.4,
        "iou": 0.45,
    }
    fields.update(over)
    return ModelManifest.model_validate(fields)


def _frames(clip: Path, wanted: set[int]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(clip))
    out: list[np.ndarray] = []
    i = 0
    while len(out) < len(wanted):
        ok, img = cap.read()
        if not ok:
            break
        if i in wanted:
            out.append(img)
        i += 1
    return out


def test_the_file_says_it_is_yolox(yolox: Path) -> None:
    facts = inspect_onnx(yolox)
    assert (facts.layout, facts.num_classes, facts.input_size, facts.color_order) == ("yolox", 80, 416, "bgr")
    assert facts.classes is not None and facts.classes[0] == "person"


def test_yolox_finds_walking_people_on_the_real_clip(yolox: Path, shared_footage: Path) -> None:
    detector = OnnxYoloDetector(_manifest(yolox), yolox, frozenset({"person"}))
    for img in _frames(shared_footage, {0, 100, 200, 300}):
        h, w = img.shape[:2]
        found = detector.detect(img, 0.0)
        # The README's measurement: 13-20 walking people per frame at 0.4.
        assert 10 <= len(found) <= 30, len(found)
        for d in found:
            x1, y1, x2, y2 = d.box
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert d.label == "person" and d.confidence >= 0.4
            # People seen from above at 720p: tens of pixels, not the whole frame.
            assert 15 <= x2 - x1 <= 200 and 30 <= y2 - y1 <= 300


def test_wrong_preprocessing_finds_far_less(yolox: Path, shared_footage: Path) -> None:
    """The layout's preprocessing matters: the ultralytics way (RGB, 0-1, centred) breaks YOLOX."""
    (img,) = _frames(shared_footage, {0})
    right = OnnxYoloDetector(_manifest(yolox), yolox, frozenset({"person"}))
    wrong = OnnxYoloDetector(_manifest(yolox), yolox, frozenset({"person"}))
    wrong._prep = {"corner": False, "bgr": False, "unit_scale": True}
    assert len(wrong.detect(img, 0.0)) < len(right.detect(img, 0.0)) / 2


def test_tiling_finds_at_least_as_many(yolox: Path, shared_footage: Path) -> None:
    (img,) = _frames(shared_footage, {0})
    plain = OnnxYoloDetector(_manifest(yolox), yolox, frozenset({"person"}))
    tiled = OnnxYoloDetector(_manifest(yolox), yolox, frozenset({"person"}), tiling=TilingConfig(grid=2))
    assert len(tiled.detect(img, 0.0)) >= len(plain.detect(img, 0.0))


def test_a_manifest_that_does_not_match_its_file_is_refused(yolox: Path) -> None:
    with pytest.raises(EdgeError, match="input size: manifest 640, file 416"):
        OnnxYoloDetector(_manifest(yolox, input_size=640), yolox, frozenset({"person"}))
    with pytest.raises(EdgeError, match="layout: manifest ultralytics"):
        OnnxYoloDetector(_manifest(yolox, layout="ultralytics"), yolox, frozenset({"person"}))


def test_tiles_cover_the_frame_with_overlap() -> None:
    tiles = tile_windows(1280, 720, 2, 0.2)
    assert len(tiles) == 4
    assert tiles[0][:2] == (0, 0) and tiles[-1][2:] == (1280, 720)
    assert tiles[0][2] > tiles[1][0]  # neighbours overlap
    assert tile_windows(1280, 720, 1, 0.2) == [(0, 0, 1280, 720)]
