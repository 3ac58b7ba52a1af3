"""Station zones and count lines in frame pixels; pure geometry, no state."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]


def to_pixels(points: Sequence[Sequence[float]], width: int, height: int, normalized: bool) -> list[Point]:
    if normalized:
        return [(float(x) * width, float(y) * height) for x, y in points]
    return [(float(x), float(y)) for x, y in points]


@dataclass(frozen=True, slots=True)
class Polygon:
    points: tuple[Point, ...]

    def contains(self, point: Point) -> bool:
        """Even-odd ray casting; points on an edge may fall either way."""
        x, y = point
        inside = False
        pts = self.points
        j = len(pts) - 1
        for i in range(len(pts)):
            xi, yi = pts[i]
            xj, yj = pts[j]
            if (yi > y) != (yj > y):
                x_cross = xi + (y - yi) * (xj - xi) / (yj - yi)
                if x < x_cross:
                    inside = not inside
            j = i
        return inside

    def bounds(self) -> tuple[int, int, int, int]:
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1


@dataclass(frozen=True, slots=True)
class Line:
    a: Point
    b: Point

    def signed_distance(self, point: Point) -> float:
        """Distance from the infinite line, positive on the left of a->b."""
        (ax, ay), (bx, by) = self.a, self.b
        length = math.hypot(bx - ax, by - ay)
        if length == 0:
            return 0.0
        return ((bx - ax) * (point[1] - ay) - (by - ay) * (point[0] - ax)) / length

    def within_extent(self, point: Point, margin: float = 0.0) -> bool:
        """Whether the point projects onto the segment (so objects passing beside its ends don't count)."""
        (ax, ay), (bx, by) = self.a, self.b
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        if length2 == 0:
            return False
        t = ((point[0] - ax) * dx + (point[1] - ay) * dy) / length2
        slack = margin / math.sqrt(length2)
        return -slack <= t <= 1 + slack
