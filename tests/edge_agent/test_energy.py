from __future__ import annotations

import numpy as np
import pytest

from edge_agent.energy import MotionEnergy, keypoint_activity


def test_motion_energy_is_the_changed_share_of_a_box() -> None:
    energy = MotionEnergy()
    frame = np.zeros((100, 100, 3), np.uint8)
    energy.update(frame)
    assert energy.energy((0, 0, 99, 99)) == 0.0  # nothing to compare with yet
    moved = frame.copy()
    moved[10:30, 10:30] = 255
    energy.update(moved)
    assert energy.energy((60, 60, 99, 99)) == 0.0
    assert energy.energy((10, 10, 29, 29)) > 0.5
    energy.update(moved)
    assert energy.energy((10, 10, 29, 29)) == 0.0  # still again


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (((10, 10, 0.9), (20, 20, 0.9)), ((10, 10, 0.9), (20, 30, 0.9)), 0.1),  # a hand moved 10 px
        (((10, 10, 0.9),), ((10, 10, 0.9),), 0.0),
        (((10, 10, 0.2),), ((50, 50, 0.9),), 0.0),  # unsure keypoints do not count
    ],
)
def test_keypoint_activity(
    previous: tuple[tuple[float, float, float], ...],
    current: tuple[tuple[float, float, float], ...],
    expected: float,
) -> None:
    assert keypoint_activity(previous, current, (0, 0, 50, 100)) == pytest.approx(expected)
