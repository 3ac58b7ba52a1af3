from __future__ import annotations

import pytest

from edge_agent.zones import Line, Polygon, to_pixels

SQUARE = Polygon(((0, 0), (10, 0), (10, 10), (0, 10)))
L_SHAPE = Polygon(((0, 0), (10, 0), (10, 4), (4, 4), (4, 10), (0, 10)))


@pytest.mark.parametrize(
    ("polygon", "point", "inside"),
    [
        (SQUARE, (5, 5), True),
        (SQUARE, (11, 5), False),
        (SQUARE, (-1, -1), False),
        (L_SHAPE, (2, 8), True),
        (L_SHAPE, (8, 8), False),  # the notch of the L
        (L_SHAPE, (8, 2), True),
    ],
)
def test_point_in_polygon(polygon: Polygon, point: tuple[float, float], inside: bool) -> None:
    assert polygon.contains(point) is inside


def test_normalised_coordinates_scale_to_the_frame() -> None:
    assert to_pixels([(0.5, 0.25), (1, 1)], 640, 480, True) == [(320, 120), (640, 480)]
    assert to_pixels([(3, 4)], 640, 480, False) == [(3, 4)]


@pytest.mark.parametrize(
    ("point", "sign", "within"),
    [((5, -3), -1, True), ((5, 3), 1, True), ((20, 3), 1, False), ((-0.5, 2), 1, True)],
)
def test_line_side_and_extent(point: tuple[float, float], sign: int, within: bool) -> None:
    line = Line((0, 0), (10, 0))
    assert (line.signed_distance(point) > 0) == (sign > 0)
    assert line.within_extent(point, margin=1.0) is within
