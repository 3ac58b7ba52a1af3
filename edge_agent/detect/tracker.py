"""A small centroid tracker for backends without their own (motion, ONNX Runtime).

Greedy nearest-centroid matching per label. A track gets an id only after
``min_hits`` consecutive matches, so a one-frame blob never counts as an object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge_agent.detect.base import Detection


@dataclass(slots=True)
class _Track:
    label: str
    center: tuple[float, float]
    size: float
    hits: int
    missed: int
    track_id: int | None


class CentroidTracker:
    def __init__(self, *, max_distance: float = 60.0, min_hits: int = 2, max_missed: int = 5) -> None:
        self.max_distance = max_distance
        self.min_hits = min_hits
        self.max_missed = max_missed
        self._tracks: list[_Track] = []
        self._next_id = 1

    def update(self, detections: list[Detection]) -> list[Detection]:
        pairs: list[tuple[float, int, int]] = []
        for ti, track in enumerate(self._tracks):
            for di, det in enumerate(detections):
                if det.label != track.label:
                    continue
                cx, cy = det.center
                dist = math.hypot(cx - track.center[0], cy - track.center[1])
                # Big objects may move more pixels between samples than small ones.
                if dist <= max(self.max_distance, 0.75 * track.size):
                    pairs.append((dist, ti, di))
        pairs.sort()
        used_t: set[int] = set()
        assigned: dict[int, int] = {}
        for _, ti, di in pairs:
            if ti in used_t or di in assigned:
                continue
            used_t.add(ti)
            assigned[di] = ti
        out: list[Detection] = []
        for di, det in enumerate(detections):
            size = math.sqrt(det.area)
            if di in assigned:
                track = self._tracks[assigned[di]]
                track.center, track.size, track.missed = det.center, size, 0
                track.hits += 1
            else:
                track = _Track(det.label, det.center, size, 1, 0, None)
                self._tracks.append(track)
                used_t.add(len(self._tracks) - 1)
            if track.track_id is None and track.hits >= self.min_hits:
                track.track_id = self._next_id
                self._next_id += 1
            out.append(det.with_track(track.track_id))
        for ti, track in enumerate(self._tracks):
            if ti not in used_t:
                track.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return out

    @property
    def active(self) -> int:
        return len(self._tracks)
