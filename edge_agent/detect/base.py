"""Our own detection type, converted to once from whatever a backend produces."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    confidence: float
    box: Box
    # None while a tracker has not confirmed the object: such detections count
    # for presence but never for line crossings.
    track_id: int | None = None
    keypoints: tuple[tuple[float, float, float], ...] | None = None

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return ((x1 + x2) / 2, (y1 + y2) / 2)

    @property
    def bottom(self) -> tuple[float, float]:
        x1, _, x2, y2 = self.box
        return ((x1 + x2) / 2, y2)

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def with_track(self, track_id: int | None) -> Detection:
        return replace(self, track_id=track_id)


class Detector(Protocol):
    """One interface for every backend. ``tracks`` says whether ids come with the detections."""

    model_version: str
    tracks: bool

    def detect(self, frame: Image, timestamp_s: float) -> list[Detection]: ...

    def close(self) -> None: ...


def iou(a: Box, b: Box) -> float:
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
