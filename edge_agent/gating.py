"""Motion-gated detection: which frames of a camera the detector must see (pure logic, no I/O).

Running the detector on every frame of every camera caps a 2-core gateway at two or three 5 fps
cameras (docs/benchmarks.md). As in mature NVRs (Frigate: motion detection on every frame gates
object detection; stationary objects are re-checked now and then), every frame is decoded and
gets a cheap motion measure, and the detector runs on a frame only when

- a region of the camera (a station zone, a band around a count line) has changed since the
  frame the detector last saw (``ZoneMotion``: a small grey copy of the frame, differenced), or
- the camera's last detection is older than ``recheck_s`` (a person standing still, an empty
  zone and a slow change the measure cannot see are re-confirmed), or
- it is the camera's first frame (or the first after a gap).

A frame the detector does not see reuses the camera's last detections: with no motion in a zone,
what was there is still there. Under overload (more frames want the detector than its share of
the frame interval allows, live cameras only) the cameras whose detections are oldest go first
(``ration``), so every camera is served in turn and the detection age stays bounded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.detect.base import Image

Points = Sequence[tuple[float, float]]

FIRST = "first"
MOTION = "motion"
RECHECK = "recheck"


@dataclass(frozen=True, slots=True)
class GateSettings:
    """The knobs of :class:`ZoneMotion` and :class:`DetectionScheduler` (config: ``detector.gating``)."""

    motion_width: int = 320
    pixel_threshold: int = 25
    min_changed_share: float = 0.01
    recheck_s: float = 2.0
    line_band_px: float = 24.0


class ZoneMotion:
    """Share of each region's pixels that changed since the frame the detector last saw.

    Regions are polygons in the pixels of the images it is given (the processed frame); they are
    drawn into masks of a ``motion_width`` wide grey copy, blurred against compression noise.
    """

    def __init__(self, regions: Mapping[str, Points], size: tuple[int, int], settings: GateSettings) -> None:
        self.settings = settings
        width, height = size
        self._scale = min(1.0, settings.motion_width / width)
        self._size = (max(1, round(width * self._scale)), max(1, round(height * self._scale)))
        self._masks: dict[str, npt.NDArray[np.bool_]] = {}
        for name, points in regions.items():
            mask = np.zeros((self._size[1], self._size[0]), np.uint8)
            poly = np.round(np.asarray(points, dtype=np.float64) * self._scale).astype(np.int32)
            cv2.fillPoly(mask, [poly], 1)
            if mask.any():  # a region outside the frame cannot change
                self._masks[name] = mask.astype(bool)
        self._reference: Image | None = None
        self._current: Image | None = None
        self.last: dict[str, float] = {}

    def _small(self, image: Image) -> Image:
        if self._scale < 1.0:
            image = np.asarray(cv2.resize(image, self._size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        return np.asarray(cv2.GaussianBlur(gray, (3, 3), 0), dtype=np.uint8)

    def measure(self, image: Image) -> dict[str, float]:
        """Changed share per region against the reference (all 1.0 before the first reference)."""
        small = self._small(image)
        self._current = small
        if self._reference is None or self._reference.shape != small.shape:
            self.last = dict.fromkeys(self._masks, 1.0)
        else:
            changed = cv2.absdiff(small, self._reference) > self.settings.pixel_threshold
            self.last = {name: float(changed[mask].mean()) for name, mask in self._masks.items()}
        return self.last

    def seen(self) -> None:
        """The detector saw the frame last measured: it is the reference from now on."""
        if self._current is not None:
            self._reference = self._current

    def moving(self, shares: dict[str, float] | None = None) -> list[str]:
        shares = self.last if shares is None else shares
        return [name for name, share in shares.items() if share >= self.settings.min_changed_share]


def line_band(a: tuple[float, float], b: tuple[float, float], half_width: float) -> list[tuple[float, float]]:
    """The rectangle of ``half_width`` on both sides of the segment a–b (a count line's region)."""
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    length = max(1e-9, (dx * dx + dy * dy) ** 0.5)
    nx, ny = -dy / length * half_width, dx / length * half_width
    ex, ey = dx / length * half_width, dy / length * half_width
    return [
        (ax - ex + nx, ay - ey + ny),
        (bx + ex + nx, by + ey + ny),
        (bx + ex - nx, by + ey - ny),
        (ax - ex - nx, ay - ey - ny),
    ]


class DetectionScheduler:
    """One camera's record of when the detector last saw it, and why the next frame needs it.

    Times are the frames' timestamps (the video timeline for files), so a file gives the same
    decisions however fast it is read.
    """

    def __init__(self, settings: GateSettings, window_s: float = 10.0) -> None:
        self.settings = settings
        self.window_s = window_s
        self.last_detect_s: float | None = None
        self.detections = 0
        self.frames_gated = 0  # frames no region moved on: last detections reused
        self.frames_deferred = 0  # frames that wanted the detector, overloaded: last detections reused
        self.by_reason: dict[str, int] = {FIRST: 0, MOTION: 0, RECHECK: 0}
        self.frames_moving = 0  # frames on which some region had moved (detected or not)
        self._recent: deque[float] = deque()  # frame times of detections within window_s
        self._deferred: deque[float] = deque()  # frame times of deferred frames within window_s
        self._ages: deque[tuple[float, float]] = deque()  # (frame time, detection age) within window_s
        self.last_frame_s: float | None = None

    def reason(self, t: float, moving: Sequence[str]) -> str | None:
        """Why the frame at ``t`` needs the detector (None: its last detections still hold)."""
        if self.last_detect_s is None or t < self.last_detect_s:
            return FIRST
        if moving:
            self.frames_moving += 1
            return MOTION
        if t - self.last_detect_s >= self.settings.recheck_s:
            return RECHECK
        return None

    def age_at(self, t: float) -> float | None:
        """Time since the last detection at frame time ``t`` (None: never detected)."""
        return None if self.last_detect_s is None else max(0.0, t - self.last_detect_s)

    def reset(self) -> None:
        """After a gap or a wrong view: the next frame is seen afresh."""
        self.last_detect_s = None

    def detected(self, t: float, reason: str | None) -> None:
        self.last_detect_s = t
        self.detections += 1
        if reason in self.by_reason:
            self.by_reason[reason] += 1
        self._recent.append(t)
        self._frame(t)

    def skipped(self, t: float, wanted: bool) -> None:
        if wanted:
            self.frames_deferred += 1
            self._deferred.append(t)
        else:
            self.frames_gated += 1
        self._frame(t)

    def _frame(self, t: float) -> None:
        self.last_frame_s = t
        age = 0.0 if self.last_detect_s is None else max(0.0, t - self.last_detect_s)
        self._ages.append((t, age))
        while self._ages and self._ages[0][0] < t - self.window_s:
            self._ages.popleft()
        while self._recent and self._recent[0] < t - self.window_s:
            self._recent.popleft()
        while self._deferred and self._deferred[0] < t - self.window_s:
            self._deferred.popleft()

    @property
    def detection_age_s(self) -> float:
        """How old the detections behind the latest frame are (0: it was detected)."""
        return self._ages[-1][1] if self._ages else 0.0

    @property
    def detection_age_max_s(self) -> float:
        """The oldest detections any frame of the last ``window_s`` relied on."""
        return max((a for _, a in self._ages), default=0.0)

    @property
    def overloaded(self) -> bool:
        """Frames waited for the detector in the last ``window_s`` and some relied on detections
        older than ``recheck_s``: the gateway serves more motion than its detector keeps up with."""
        return bool(self._deferred) and self.detection_age_max_s > self.settings.recheck_s

    @property
    def detect_fps(self) -> float:
        """Detector runs per second of frame time over the last ``window_s``."""
        if not self._ages:
            return 0.0
        span = self._ages[-1][0] - self._ages[0][0]
        return len(self._recent) / span if span > 0 else float(len(self._recent))


def ration(ages: Sequence[float | None], capacity: int) -> list[int]:
    """Which of the frames that want the detector get it now: at most ``capacity`` (at least one),
    those whose camera's last detection is oldest first (``None``, never detected, before all).
    ``ages`` are each frame's time since its camera's last detection; returns indexes into it in
    the order given (ties keep it)."""

    def oldest_first(i: int) -> float:
        age = ages[i]
        return -float("inf") if age is None else -age

    order = sorted(range(len(ages)), key=oldest_first)
    chosen = set(order[: max(1, capacity)])
    return [i for i in range(len(ages)) if i in chosen]
