"""Product counting: a tracked object of a configured class crossing a count line, once per track."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from edge_agent.detect.base import Detection
from edge_agent.zones import Line


class Direction(StrEnum):
    ANY = "any"
    # left/right of the line as seen walking from its first point to its second.
    LEFT_TO_RIGHT = "left_to_right"
    RIGHT_TO_LEFT = "right_to_left"


@dataclass(frozen=True, slots=True)
class Crossing:
    line_id: str
    track_id: int
    label: str
    confidence: float
    timestamp_s: float


@dataclass(slots=True)
class _TrackSide:
    side: int  # -1 right, +1 left; 0 never here (dead band)
    last_seen_s: float
    counted: bool


class LineCounter:
    """``update(detections, t) -> crossings``; evicts tracks not seen for ``stale_s``.

    A side is only recorded once the object is more than ``dead_band_px`` from
    the line, so an object jittering on the line never flips sides.
    """

    def __init__(
        self,
        line_id: str,
        line: Line,
        labels: frozenset[str],
        *,
        direction: Direction = Direction.ANY,
        dead_band_px: float = 4.0,
        stale_s: float = 5.0,
    ) -> None:
        self.line_id = line_id
        self.line = line
        self.labels = labels
        self.direction = direction
        self.dead_band_px = dead_band_px
        self.stale_s = stale_s
        self._tracks: dict[int, _TrackSide] = {}
        self.total = 0

    def update(self, detections: list[Detection], timestamp_s: float) -> list[Crossing]:
        crossings: list[Crossing] = []
        for det in detections:
            if det.track_id is None or det.label not in self.labels:
                continue
            point = det.center
            dist = self.line.signed_distance(point)
            state = self._tracks.get(det.track_id)
            if abs(dist) <= self.dead_band_px or not self.line.within_extent(point, self.dead_band_px):
                if state is not None:
                    state.last_seen_s = timestamp_s
                continue
            side = 1 if dist > 0 else -1
            if state is None:
                self._tracks[det.track_id] = _TrackSide(side, timestamp_s, False)
                continue
            state.last_seen_s = timestamp_s
            if side != state.side:
                wanted = (
                    self.direction is Direction.ANY
                    or (self.direction is Direction.LEFT_TO_RIGHT and side == -1)
                    or (self.direction is Direction.RIGHT_TO_LEFT and side == 1)
                )
                state.side = side
                if wanted and not state.counted:
                    state.counted = True
                    self.total += 1
                    crossings.append(
                        Crossing(self.line_id, det.track_id, det.label, det.confidence, timestamp_s)
                    )
        self._evict(timestamp_s)
        return crossings

    def _evict(self, now_s: float) -> None:
        stale = [tid for tid, s in self._tracks.items() if now_s - s.last_seen_s > self.stale_s]
        for tid in stale:
            del self._tracks[tid]

    @property
    def tracked(self) -> int:
        return len(self._tracks)
