"""Privacy at the edge: people are made unrecognisable in every image the agent writes.

Frames never leave the gateway, but installer snapshots do get copied around. A pure
function: the caller decides which boxes (detected people) and whether to blur at all
(``takt edge snapshot --no-blur`` is for an installer on site).
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from edge_agent.detect.base import Box, Image

# Blocks across the longer side of a box: too few to recognise a face or a figure.
BLOCKS = 6


def blur_regions(frame: Image, boxes: Iterable[Box], *, margin: float = 0.1, blocks: int = BLOCKS) -> Image:
    """A copy of ``frame`` with each box (x1, y1, x2, y2 in pixels, grown by ``margin`` of its
    size on every side, clipped to the frame) pixelated into ``blocks`` cells across and then
    smoothed. Pixelating first removes the detail a plain blur would leave recoverable."""
    out = frame.copy()
    h, w = frame.shape[:2]
    for x1, y1, x2, y2 in boxes:
        mx, my = (x2 - x1) * margin, (y2 - y1) * margin
        a, b = max(0, int(np.floor(x1 - mx))), max(0, int(np.floor(y1 - my)))
        c, d = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
        if c <= a or d <= b:
            continue
        region = out[b:d, a:c]
        rh, rw = region.shape[:2]
        step = max(rw, rh) / blocks
        small = cv2.resize(
            region, (max(1, round(rw / step)), max(1, round(rh / step))), interpolation=cv2.INTER_AREA
        )
        coarse = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_NEAREST)
        k = max(3, (min(rw, rh) // 4) | 1)
        out[b:d, a:c] = cv2.GaussianBlur(coarse, (k, k), 0)
    return out


def scaled(boxes: Iterable[Box], factor: float) -> list[Box]:
    """Boxes found in a downscaled image, in the full-size frame's pixels."""
    return [(x1 * factor, y1 * factor, x2 * factor, y2 * factor) for x1, y1, x2, y2 in boxes]
