"""YOLO person/product detection: exported ONNX models via ONNX Runtime (the gateway path,
no torch) or ultralytics ``.pt`` models (with ultralytics' own tracker).

Both read a model only through the registry, which has verified its sha256.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent import EdgeError
from edge_agent.config import TilingConfig
from edge_agent.detect.base import Detection, Image
from models.onnx_info import YOLOX_STRIDES, Layout, OnnxInfoError, check_manifest, inspect_onnx
from models.registry import ModelManifest

logger = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]


def letterbox(
    frame: Image, size: int, *, corner: bool = False, bgr: bool = False, unit_scale: bool = True
) -> tuple[FloatArray, float, tuple[float, float]]:
    """Resize keeping aspect ratio and pad with 114 to ``size``².

    Ultralytics exports: centred, RGB, 0–1 (the defaults). YOLOX: top-left corner, BGR, 0–255.
    """
    h, w = frame.shape[:2]
    scale = min(size / h, size / w)
    nh, nw = round(h * scale), round(w * scale)
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = (0, 0) if corner else ((size - nh) // 2, (size - nw) // 2)
    canvas = np.full((size, size, 3), 114, dtype=np.uint8)
    canvas[top : top + nh, left : left + nw] = resized
    chw = (canvas if bgr else canvas[:, :, ::-1]).transpose(2, 0, 1)[None].astype(np.float32)
    if unit_scale:
        chw /= 255.0
    return np.ascontiguousarray(chw), scale, (float(left), float(top))


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> list[int]:
    order = scores.argsort()[::-1]
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        overlap = inter / (areas[i] + areas[order[1:]] - inter + 1e-9)
        order = order[1:][overlap <= iou_threshold]
    return keep


@lru_cache(maxsize=8)
def _yolox_grid(size: int) -> tuple[FloatArray, FloatArray]:
    """Per output row: the grid cell (gx, gy) and its stride, in the order YOLOX concatenates them."""
    grids, strides = [], []
    for stride in YOLOX_STRIDES:
        n = size // stride
        gy, gx = np.mgrid[0:n, 0:n]
        grids.append(np.stack([gx.ravel(), gy.ravel()], axis=1))
        strides.append(np.full((n * n, 1), stride))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)


@dataclass(frozen=True)
class Candidates:
    """Boxes (x1, y1, x2, y2 in source-frame pixels) above the threshold, with score and class id."""

    boxes: FloatArray
    scores: FloatArray
    classes: npt.NDArray[np.int64]

    @staticmethod
    def concat(parts: list[Candidates]) -> Candidates:
        if not parts:
            return Candidates(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
        return Candidates(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.classes for p in parts]),
        )


def decode_candidates(
    output: FloatArray,
    layout: Layout,
    num_classes: int,
    class_ids: list[int],
    *,
    confidence: float,
    input_size: int,
    scale: float,
    pad: tuple[float, float],
    offset: tuple[float, float] = (0.0, 0.0),
) -> Candidates:
    """Either layout to boxes in the source frame; only the classes in ``class_ids``."""
    if layout == "yolox":
        pred = output[0]
        if pred.shape[1] != 5 + num_classes:
            raise EdgeError(f"model output has {pred.shape[1] - 5} classes, the manifest lists {num_classes}")
        scores_all = pred[:, 5:][:, class_ids] * pred[:, 4:5]
    else:
        pred = output[0].T
        if pred.shape[1] != 4 + num_classes:
            raise EdgeError(f"model output has {pred.shape[1] - 4} classes, the manifest lists {num_classes}")
        scores_all = pred[:, 4:][:, class_ids]
    best = scores_all.argmax(axis=1)
    conf = scores_all[np.arange(len(best)), best]
    mask = conf >= confidence
    rows = np.flatnonzero(mask)
    pred, conf = pred[rows], conf[rows]
    cls = np.asarray(class_ids, dtype=np.int64)[best[rows]]
    if layout == "yolox":
        grid, stride = _yolox_grid(input_size)
        if len(grid) != len(mask):
            raise EdgeError(f"YOLOX output has {len(mask)} rows; a {input_size}² input gives {len(grid)}")
        xy = (pred[:, :2] + grid[rows]) * stride[rows]
        wh = np.exp(pred[:, 2:4]) * stride[rows]
    else:
        xy, wh = pred[:, :2], pred[:, 2:4]
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1).astype(np.float32)
    boxes[:, [0, 2]] = (boxes[:, [0, 2]] - pad[0]) / scale + offset[0]
    boxes[:, [1, 3]] = (boxes[:, [1, 3]] - pad[1]) / scale + offset[1]
    return Candidates(boxes, conf.astype(np.float32), cls)


def to_detections(
    found: Candidates, classes: list[str], iou: float, frame_size: tuple[int, int]
) -> list[Detection]:
    """Clip to the frame, then class-wise NMS (also merges the tiles of a tiled frame)."""
    w, h = frame_size
    boxes = found.boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    out: list[Detection] = []
    for c in np.unique(found.classes):
        idx = np.flatnonzero(found.classes == c)
        for k in nms(boxes[idx], found.scores[idx], iou):
            x1, y1, x2, y2 = (float(v) for v in boxes[idx[k]])
            out.append(Detection(classes[int(c)], float(found.scores[idx[k]]), (x1, y1, x2, y2)))
    return out


def tile_windows(width: int, height: int, grid: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """``grid``² windows (x1, y1, x2, y2) covering the frame, neighbours overlapping by ``overlap``."""
    if grid <= 1:
        return [(0, 0, width, height)]
    tw = round(width / (grid - (grid - 1) * overlap))
    th = round(height / (grid - (grid - 1) * overlap))
    xs = np.linspace(0, width - tw, grid).round().astype(int)
    ys = np.linspace(0, height - th, grid).round().astype(int)
    return [(int(x), int(y), int(x) + tw, int(y) + th) for y in ys for x in xs]


class OnnxYoloDetector:
    """Exported YOLO models (ultralytics or YOLOX layout) through ONNX Runtime on the CPU.

    With ``tiling.grid`` > 1 the frame is also cut into overlapping tiles, each run at the
    model's input size, and everything found is merged by NMS: small or crowded people get
    ``grid``× more pixels, at ``grid``² (+1 with the full frame) times the inference cost.
    """

    tracks = False
    # Keeps no per-camera state: one session serves every camera of a gateway (and batches them).
    shareable = True

    def __init__(
        self,
        manifest: ModelManifest,
        path: Path,
        wanted: frozenset[str],
        confidence: float | None = None,
        tiling: TilingConfig | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise EdgeError(
                "the yolo backend with ONNX models needs onnxruntime: pip install 'takt[onnx]'"
            ) from None
        self.manifest = manifest
        self.model_version = manifest.model_version
        self.wanted = wanted
        self.confidence = manifest.confidence if confidence is None else confidence
        self.tiling = tiling or TilingConfig()
        missing = wanted - set(manifest.classes)
        if missing:
            raise EdgeError(f"model {self.model_version} has no classes {sorted(missing)}")
        try:
            facts = inspect_onnx(path)
            check_manifest(
                facts,
                model=self.model_version,
                layout=manifest.layout,
                input_size=manifest.input_size,
                classes=len(manifest.classes),
            )
        except OnnxInfoError as exc:
            raise EdgeError(str(exc)) from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self._session: Any = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EdgeError(f"cannot load ONNX model {path}: {exc}") from None
        self._input = facts.input_name
        batch = facts.input_shape[0] if facts.input_shape else 1
        # A symbolic (or absent) batch dimension takes several frames in one call; a fixed 1 does not.
        self.batch_capable = not isinstance(batch, int) or batch <= 0
        self.session_runs = 0  # calls into ONNX Runtime so far (one per frame, tile or batch)
        self._class_ids = [i for i, name in enumerate(manifest.classes) if name in wanted]
        yolox = manifest.layout == "yolox"
        self._prep = {"corner": yolox, "bgr": manifest.colors == "bgr", "unit_scale": not yolox}

    def _run(self, image: Image, offset: tuple[float, float]) -> Candidates:
        blob, scale, pad = letterbox(image, self.manifest.input_size, **self._prep)
        self.session_runs += 1
        (output,) = self._session.run(None, {self._input: blob})[:1]
        return self._decode(np.asarray(output, dtype=np.float32), scale, pad, offset)

    def _decode(
        self, output: FloatArray, scale: float, pad: tuple[float, float], offset: tuple[float, float]
    ) -> Candidates:
        size = self.manifest.input_size
        return decode_candidates(
            output,
            self.manifest.layout,
            len(self.manifest.classes),
            self._class_ids,
            confidence=self.confidence,
            input_size=size,
            scale=scale,
            pad=pad,
            offset=offset,
        )

    def detect(self, frame: Image, timestamp_s: float) -> list[Detection]:
        h, w = frame.shape[:2]
        parts: list[Candidates] = []
        if self.tiling.grid <= 1 or self.tiling.full_frame:
            parts.append(self._run(frame, (0.0, 0.0)))
        if self.tiling.grid > 1:
            for x1, y1, x2, y2 in tile_windows(w, h, self.tiling.grid, self.tiling.overlap):
                parts.append(self._run(frame[y1:y2, x1:x2], (float(x1), float(y1))))
        return to_detections(Candidates.concat(parts), self.manifest.classes, self.manifest.iou, (w, h))

    def detect_batch(self, frames: list[Image], timestamps: list[float]) -> list[list[Detection]]:
        """Several frames (of several cameras): one session call where the model's batch
        dimension is free and tiling is off, else one call per frame."""
        if not self.batch_capable or self.tiling.grid > 1 or len(frames) < 2:
            return [self.detect(f, t) for f, t in zip(frames, timestamps, strict=True)]
        preps = [letterbox(f, self.manifest.input_size, **self._prep) for f in frames]
        blob = np.concatenate([b for b, _, _ in preps])
        self.session_runs += 1
        (outputs,) = self._session.run(None, {self._input: blob})[:1]
        outputs = np.asarray(outputs, dtype=np.float32)
        out = []
        for k, (frame, (_, scale, pad)) in enumerate(zip(frames, preps, strict=True)):
            found = self._decode(outputs[k : k + 1], scale, pad, (0.0, 0.0))
            h, w = frame.shape[:2]
            out.append(to_detections(found, self.manifest.classes, self.manifest.iou, (w, h)))
        return out

    def close(self) -> None:
        self._session = None


class UltralyticsDetector:
    """``.pt`` models through ultralytics, tracking with its ByteTrack (needs ``lap``)."""

    tracks = True

    def __init__(
        self, manifest: ModelManifest, path: Path, wanted: frozenset[str], confidence: float | None = None
    ) -> None:
        try:
            from ultralytics import YOLO
        except ImportError:
            raise EdgeError(
                "the yolo backend with .pt models needs ultralytics: pip install 'takt[yolo]'"
            ) from None
        self.manifest = manifest
        self.model_version = manifest.model_version
        self.wanted = wanted
        self.confidence = manifest.confidence if confidence is None else confidence
        self._model: Any = YOLO(str(path))
        self._class_ids = [i for i, name in enumerate(manifest.classes) if name in wanted]

    def detect(self, frame: Image, timestamp_s: float) -> list[Detection]:
        result = self._model.track(
            frame,
            persist=True,
            imgsz=self.manifest.input_size,
            conf=self.confidence,
            iou=self.manifest.iou,
            classes=self._class_ids,
            verbose=False,
        )[0]
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return []
        xyxy = boxes.xyxy.cpu().numpy()
        conf = boxes.conf.cpu().numpy()
        cls = boxes.cls.cpu().numpy().astype(int)
        ids = boxes.id.cpu().numpy().astype(int) if boxes.id is not None else [None] * len(cls)
        poses: list[Any] = [None] * len(cls)
        if getattr(result, "keypoints", None) is not None and result.keypoints.data is not None:
            poses = [
                tuple((float(x), float(y), float(c)) for x, y, c in kp)
                for kp in result.keypoints.data.cpu().numpy()
            ]
        return [
            Detection(
                self.manifest.classes[c],
                float(p),
                (float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                None if i is None else int(i),
                kp,
            )
            for b, p, c, i, kp in zip(xyxy, conf, cls, ids, poses, strict=True)
        ]

    def close(self) -> None:
        self._model = None


def build_yolo(
    manifest: ModelManifest,
    path: Path,
    wanted: frozenset[str],
    runtime: str,
    confidence: float | None,
    tiling: TilingConfig | None = None,
) -> OnnxYoloDetector | UltralyticsDetector:
    if manifest.format == "onnx":
        return OnnxYoloDetector(manifest, path, wanted, confidence, tiling)
    if runtime == "onnxruntime":
        logger.info("model %s is a .pt file: using ultralytics", manifest.model_version)
    return UltralyticsDetector(manifest, path, wanted, confidence)
