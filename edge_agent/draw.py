"""Drawing zones, count lines and detections on a frame (installer snapshots only)."""

from __future__ import annotations

import cv2
import numpy as np

from edge_agent.detect.base import Detection, Image
from edge_agent.pipeline import Geometry


def draw_overlay(image: Image, geometry: Geometry, detections: list[Detection]) -> Image:
    out = image.copy()
    for station_id, zone in geometry.zones.items():
        pts = np.array([[round(x), round(y)] for x, y in zone.points], dtype=np.int32)
        cv2.polylines(out, [pts], isClosed=True, color=(0, 200, 0), thickness=2)
        x, y = pts[0]
        cv2.putText(
            out, station_id, (int(x) + 3, int(y) + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 0), 1
        )
    for line_id, line in geometry.lines.items():
        a = (round(line.a[0]), round(line.a[1]))
        b = (round(line.b[0]), round(line.b[1]))
        cv2.line(out, a, b, (0, 0, 255), 2)
        cv2.putText(out, line_id, (a[0] + 3, a[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1)
    for det in detections:
        x1, y1, x2, y2 = (round(v) for v in det.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (255, 160, 0), 1)
        label = f"{det.label} {det.confidence:.2f}" + (
            f" #{det.track_id}" if det.track_id is not None else ""
        )
        cv2.putText(out, label, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 160, 0), 1)
    return out
