"""blur_regions: people unrecognisable, everything else untouched."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.privacy import blur_regions


def _texture(h: int = 120, w: int = 160) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_detail_inside_a_box_is_gone_and_outside_untouched() -> None:
    frame = _texture()
    out = blur_regions(frame, [(40.0, 30.0, 80.0, 90.0)], margin=0.0)
    inside, before = out[30:90, 40:80].astype(float), frame[30:90, 40:80].astype(float)
    # Random detail (std ~74) becomes a few smooth blocks.
    assert before.std() > 60 and inside.std() < 20
    # Neighbouring pixels are nearly equal: no edges left to recognise.
    assert np.abs(np.diff(inside, axis=1)).mean() < 5
    mask = np.ones(frame.shape[:2], bool)
    mask[30:90, 40:80] = False
    assert np.array_equal(out[mask], frame[mask])
    assert not np.array_equal(frame, out)


def test_the_input_frame_is_not_changed() -> None:
    frame = _texture()
    copy = frame.copy()
    blur_regions(frame, [(0.0, 0.0, 50.0, 50.0)])
    assert np.array_equal(frame, copy)


@pytest.mark.parametrize(
    "box",
    [
        (-30.0, -20.0, 20.0, 40.0),  # partly outside the frame: clipped
        (150.0, 100.0, 400.0, 300.0),
        (10.3, 10.7, 11.2, 11.9),  # about one pixel
    ],
)
def test_boxes_at_the_edge_or_tiny_are_clipped_not_errors(box: tuple[float, float, float, float]) -> None:
    frame = _texture()
    out = blur_regions(frame, [box])
    assert out.shape == frame.shape and out.dtype == frame.dtype


@pytest.mark.parametrize("box", [(200.0, 200.0, 300.0, 300.0), (50.0, 50.0, 40.0, 40.0)])
def test_boxes_outside_the_frame_or_empty_change_nothing(box: tuple[float, float, float, float]) -> None:
    frame = _texture()
    assert np.array_equal(blur_regions(frame, [box], margin=0.0), frame)


def test_margin_grows_the_box() -> None:
    frame = _texture()
    out = blur_regions(frame, [(40.0, 40.0, 80.0, 80.0)], margin=0.25)
    assert not np.array_equal(out[32:40, 50:70], frame[32:40, 50:70])  # 10 px above the box: blurred too
    assert np.array_equal(out[:25], frame[:25])
