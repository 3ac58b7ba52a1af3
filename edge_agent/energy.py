"""Motion energy: the share of pixels that changed between two sampled frames, per region.

Used for every backend to tell a working person (moving hands, tools) from an idle one.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.detect.base import Box, Image


class MotionEnergy:
    def __init__(self, pixel_threshold: int = 25) -> None:
        self.pixel_threshold = pixel_threshold
        self._previous: Image | None = None
        self._changed: npt.NDArray[np.bool_] | None = None

    def update(self, frame: Image) -> None:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        gray = np.asarray(cv2.GaussianBlur(gray, (5, 5), 0), dtype=np.uint8)
        if self._previous is not None and self._previous.shape == gray.shape:
            self._changed = cv2.absdiff(gray, self._previous) > self.pixel_threshold
        else:
            self._changed = None
        self._previous = gray

    def energy(self, box: Box) -> float:
        if self._changed is None:
            return 0.0
        h, w = self._changed.shape
        x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
        x2, y2 = min(w, int(box[2]) + 1), min(h, int(box[3]) + 1)
        if x2 <= x1 or y2 <= y1:
            return 0.0
        return float(self._changed[y1:y2, x1:x2].mean())


Keypoints = tuple[tuple[float, float, float], ...]


def keypoint_activity(previous: Keypoints, current: Keypoints, box: Box, min_conf: float = 0.5) -> float:
    """Largest movement of a confidently seen pose keypoint (hands, elbows...), as a share of body height.

    Pose models see hands move even when little changes in pixel terms (gloves
    against a grey machine), so when keypoints are given they decide activity.
    """
    height = max(1.0, box[3] - box[1])
    moves = [
        ((cx - px) ** 2 + (cy - py) ** 2) ** 0.5
        for (px, py, pc), (cx, cy, cc) in zip(previous, current, strict=False)
        if pc >= min_conf and cc >= min_conf
    ]
    return float(max(moves, default=0.0) / height)
