"""Background subtraction (MOG2/KNN): foreground blobs as people or objects, no weights."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from edge_agent.config import MotionConfig
from edge_agent.detect.base import Detection, Image

MOTION_MODEL_VERSION = "motion-mog2@1"


class MotionDetector:
    tracks = False

    def __init__(
        self, config: MotionConfig, person_label: str = "person", model_version: str | None = None
    ) -> None:
        self.config = config
        self.person_label = person_label
        self.model_version = model_version or f"motion-{config.algorithm}@1"
        self._subtractor: Any = (
            cv2.createBackgroundSubtractorMOG2(varThreshold=config.var_threshold, detectShadows=False)
            if config.algorithm == "mog2"
            else cv2.createBackgroundSubtractorKNN(detectShadows=False)
        )
        self._frames = 0
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))

    def detect(self, frame: Image, timestamp_s: float) -> list[Detection]:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        gray = np.asarray(cv2.GaussianBlur(gray, (5, 5), 0), dtype=np.uint8)
        # Warm-up frames *are* the background; afterwards learn slowly so a
        # worker standing still stays foreground instead of fading into the scene.
        warming = self._frames < self.config.warmup_frames
        self._frames += 1
        if warming or not self.config.freeze_people:
            rate = 1.0 if warming else self.config.learning_rate
            mask = self._subtractor.apply(gray, learningRate=rate)
        else:
            mask = self._subtractor.apply(gray, learningRate=0)
        _, mask = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        detections = []
        for i in range(1, count):
            x, y, w, h, pixels = (int(v) for v in stats[i])
            area = float(w * h)
            if area >= self.config.person_min_area:
                label = self.person_label
            elif area >= self.config.object_min_area:
                label = self.config.object_label
            else:
                continue
            fill = pixels / area if area else 0.0
            confidence = float(np.clip(0.5 + fill / 2, 0.0, 1.0))
            detections.append(Detection(label, confidence, (float(x), float(y), float(x + w), float(y + h))))
        if not warming and self.config.freeze_people:
            self._learn(gray, [d for d in detections if d.label == self.person_label])
        return detections

    def _learn(self, gray: Image, people: list[Detection]) -> None:
        """Update the background everywhere except where people are.

        Otherwise a worker who stands at the same bench for an hour slowly
        becomes part of the background and would be reported absent.
        """
        frame = gray
        if people:
            background = self._subtractor.getBackgroundImage()
            if background is not None and background.shape == gray.shape:
                frame = gray.copy()
                h, w = gray.shape[:2]
                for d in people:
                    x1, y1, x2, y2 = d.box
                    m = 6
                    sl = (
                        slice(max(0, int(y1) - m), min(h, int(y2) + m)),
                        slice(max(0, int(x1) - m), min(w, int(x2) + m)),
                    )
                    frame[sl] = background[sl]
        self._subtractor.apply(frame, learningRate=self.config.learning_rate)

    def close(self) -> None:
        return None
