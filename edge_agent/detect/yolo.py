"""YOLO person/product detection: exported ONNX models via ONNX Runtime (the gateway path,
no torch) or ultralytics ``.pt`` models (with ultralytics' own tracker).

Both read a model only through the registry, which has verified its sha256.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent import EdgeError
from edge_agent.detect.base import Detection, Image
from models.registry import ModelManifest

logger = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]


def letterbox(frame: Image, size: int) -> tuple[FloatArray, float, tuple[float, float]]:
    """Resize keeping aspect ratio and pad to ``size``², as ultralytics does for export."""
    h, w = frame.shape[:2]
    scale = min(size / h, size / w)
    nh, nw = round(h * scale), round(w * scale)
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas = np.full((size, size, 3), 114, dtype=np.uint8)
    canvas[top : top + nh, left : left + nw] = resized
    blob = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    return np.ascontiguousarray(blob), scale, (float(left), float(top))


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


def decode_yolo_output(
    output: FloatArray,
    classes: list[str],
    wanted: frozenset[str],
    *,
    confidence: float,
    iou: float,
    scale: float,
    pad: tuple[float, float],
    frame_size: tuple[int, int],
) -> list[Detection]:
    """YOLOv8/11 export layout: ``(1, 4 + classes, anchors)``, boxes as centre x, y, w, h in input pixels."""
    pred = output[0].T
    if pred.shape[1] != 4 + len(classes):
        raise EdgeError(f"model output has {pred.shape[1] - 4} classes, the manifest lists {len(classes)}")
    scores = pred[:, 4:]
    cls = scores.argmax(axis=1)
    conf = scores[np.arange(len(cls)), cls]
    mask = conf >= confidence
    if not mask.any():
        return []
    pred, cls, conf = pred[mask], cls[mask], conf[mask]
    xy, wh = pred[:, :2], pred[:, 2:4]
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
    boxes[:, [0, 2]] = (boxes[:, [0, 2]] - pad[0]) / scale
    boxes[:, [1, 3]] = (boxes[:, [1, 3]] - pad[1]) / scale
    w, h = frame_size
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    out: list[Detection] = []
    for c in np.unique(cls):
        label = classes[int(c)]
        if label not in wanted:
            continue
        idx = np.flatnonzero(cls == c)
        for k in nms(boxes[idx], conf[idx], iou):
            x1, y1, x2, y2 = (float(v) for v in boxes[idx[k]])
            out.append(Detection(label, float(conf[idx[k]]), (x1, y1, x2, y2)))
    return out


class OnnxYoloDetector:
    tracks = False

    def __init__(
        self, manifest: ModelManifest, path: Path, wanted: frozenset[str], confidence: float | None = None
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
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self._session: Any = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EdgeError(f"cannot load ONNX model {path}: {exc}") from None
        self._input = self._session.get_inputs()[0].name
        missing = wanted - set(manifest.classes)
        if missing:
            raise EdgeError(f"model {self.model_version} has no classes {sorted(missing)}")

    def detect(self, frame: Image, timestamp_s: float) -> list[Detection]:
        blob, scale, pad = letterbox(frame, self.manifest.input_size)
        (output,) = self._session.run(None, {self._input: blob})[:1]
        h, w = frame.shape[:2]
        return decode_yolo_output(
            np.asarray(output, dtype=np.float32),
            self.manifest.classes,
            self.wanted,
            confidence=self.confidence,
            iou=self.manifest.iou,
            scale=scale,
            pad=pad,
            frame_size=(w, h),
        )

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
    manifest: ModelManifest, path: Path, wanted: frozenset[str], runtime: str, confidence: float | None
) -> OnnxYoloDetector | UltralyticsDetector:
    if manifest.format == "onnx":
        return OnnxYoloDetector(manifest, path, wanted, confidence)
    if runtime == "onnxruntime":
        logger.info("model %s is a .pt file: using ultralytics", manifest.model_version)
    return UltralyticsDetector(manifest, path, wanted, confidence)
