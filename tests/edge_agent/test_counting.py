from __future__ import annotations

import pytest

from edge_agent.counting import Direction, LineCounter
from edge_agent.detect.base import Detection
from edge_agent.zones import Line

# A vertical line at x = 100 from y = 0 to y = 200; objects move along x.
LINE = Line((100, 0), (100, 200))


def det(x: float, y: float = 100, track: int | None = 1, label: str = "product") -> Detection:
    return Detection(label, 0.9, (x - 5, y - 5, x + 5, y + 5), track)


def run(frames: list[list[Detection]], **kwargs: object) -> int:
    counter = LineCounter("l1", LINE, frozenset({"product"}), **kwargs)  # type: ignore[arg-type]
    total = 0
    for i, dets in enumerate(frames):
        total += len(counter.update(dets, float(i)))
    assert total == counter.total
    return total


@pytest.mark.parametrize(
    ("name", "frames", "expected"),
    [
        ("one crossing", [[det(80)], [det(95)], [det(110)], [det(130)]], 1),
        ("stays on one side", [[det(60)], [det(80)], [det(90)]], 0),
        # Jitter on the line and back and forth across it: one track counts once.
        ("flicker near the line", [[det(x)] for x in (90, 98, 102, 99, 101, 110, 90, 110, 90)], 1),
        (
            "several objects crossing together",
            [
                [det(80, 20, 1), det(80, 60, 2), det(80, 100, 3)],
                [det(120, 20, 1), det(120, 60, 2), det(120, 100, 3)],
            ],
            3,
        ),
        ("unconfirmed tracks never count", [[det(80, track=None)], [det(120, track=None)]], 0),
        ("other classes ignored", [[det(80, label="person")], [det(120, label="person")]], 0),
        ("passes beside the end of the line", [[det(80, y=260)], [det(120, y=260)]], 0),
        ("first seen on the line, then leaves", [[det(100)], [det(120)]], 0),
    ],
)
def test_line_counter(name: str, frames: list[list[Detection]], expected: int) -> None:
    assert run(frames) == expected, name


def test_direction_filter() -> None:
    right_to_left_motion = [[det(120)], [det(80)]]
    # Walking from (100,0) to (100,200), x > 100 is on the right.
    assert run(right_to_left_motion, direction=Direction.RIGHT_TO_LEFT) == 1
    assert run(right_to_left_motion, direction=Direction.LEFT_TO_RIGHT) == 0


def test_stale_tracks_are_evicted() -> None:
    counter = LineCounter("l1", LINE, frozenset({"product"}), stale_s=2.0)
    counter.update([det(80, track=7)], 0.0)
    assert counter.tracked == 1
    counter.update([], 5.0)
    assert counter.tracked == 0
    # The same id seen again later starts fresh instead of counting from stale state.
    assert counter.update([det(120, track=7)], 6.0) == []
