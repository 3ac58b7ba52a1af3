"""Camera health: is the view still the one the zones were drawn on?

A fixed camera over a work area goes wrong in four ways: it is knocked and the view **moved**,
something is in front of it (**covered**), it is **blurred** (focus, a smeared or fogged lens), or
the stream keeps delivering the same picture (**frozen**). Each is judged against a reference
frame kept on the gateway, with cheap OpenCV measures on a 320 px wide grey copy, once every
``check_every_s`` seconds of frame time (not every frame):

- moved: phase correlation shift against the reference, or a layout that no longer matches it;
- covered: contrast gone, or edges gone together with the layout;
- blurred: variance of the Laplacian (sharpness) far below the reference's while the layout holds;
- frozen: no pixel change between checks for ``frozen_after_s``.

Pure logic: images and times in, verdicts out. Reading and writing the reference file is
:class:`ReferenceStore`'s job.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.config import HealthConfig
from edge_agent.detect.base import Image
from takt.contract import ViewHealth

logger = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
WORK_WIDTH = 320
LAYOUT_WIDTH = 40
# Layout similarity (normalised correlation of a 40 px copy) below which the scene is not the
# reference's: a camera pointing elsewhere, or something in front of it.
MIN_LAYOUT = 0.4
# Below these, the reference itself has too little structure to judge contrast or focus against.
MIN_REFERENCE_SHARPNESS = 20.0


@dataclass(frozen=True, slots=True)
class Features:
    """What the checks need of one frame."""

    gray: FloatArray
    layout: FloatArray
    contrast: float
    sharpness: float
    edges: float

    @staticmethod
    def of(image: Image) -> Features:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        h, w = gray.shape[:2]
        small = cv2.resize(
            gray, (WORK_WIDTH, max(1, round(h * WORK_WIDTH / w))), interpolation=cv2.INTER_AREA
        )
        layout = cv2.resize(
            cv2.GaussianBlur(small, (0, 0), 3),
            (LAYOUT_WIDTH, max(1, round(h * LAYOUT_WIDTH / w))),
            interpolation=cv2.INTER_AREA,
        ).astype(np.float32)
        return Features(
            gray=small.astype(np.float32),
            layout=layout,
            contrast=float(small.std()),
            sharpness=float(cv2.Laplacian(small, cv2.CV_64F).var()),
            edges=float((cv2.Canny(small, 50, 150) > 0).mean()),
        )


@dataclass(frozen=True, slots=True)
class Measures:
    """One check's figures against the reference (reported in the heartbeat)."""

    shift_px: float
    layout: float
    sharpness_ratio: float
    edge_ratio: float
    contrast: float
    still_s: float

    def rounded(self) -> dict[str, float]:
        return {
            "shift_px": round(self.shift_px, 1),
            "layout": round(self.layout, 3),
            "sharpness_ratio": round(self.sharpness_ratio, 3),
            "edge_ratio": round(self.edge_ratio, 3),
            "contrast": round(self.contrast, 1),
            "still_s": round(self.still_s, 1),
        }


def _correlation(a: FloatArray, b: FloatArray) -> float:
    a0, b0 = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a0 * a0).sum()) * float((b0 * b0).sum()))
    return float((a0 * b0).sum()) / denom if denom > 1e-9 else 0.0


def _shift(reference: FloatArray, current: FloatArray) -> float:
    if reference.shape != current.shape:
        # Another size or aspect than the reference's: beyond measure (finite, for JSON).
        return float(WORK_WIDTH)
    window = cv2.createHanningWindow((reference.shape[1], reference.shape[0]), cv2.CV_32F)
    # Copies: phaseCorrelate may apply the window to its inputs in place.
    (dx, dy), _ = cv2.phaseCorrelate(reference.copy(), current.copy(), window)
    return math.hypot(dx, dy)


def classify(
    reference: Features, current: Features, still_s: float, settings: HealthConfig
) -> tuple[ViewHealth, Measures]:
    """The verdict of one check, with its measures. The first that applies wins:
    frozen, covered, blurred, moved."""
    layout = (
        _correlation(reference.layout, current.layout)
        if reference.layout.shape == current.layout.shape
        else 0.0
    )
    measures = Measures(
        shift_px=_shift(reference.gray, current.gray),
        layout=layout,
        sharpness_ratio=current.sharpness / reference.sharpness if reference.sharpness > 0 else 1.0,
        edge_ratio=current.edges / reference.edges if reference.edges > 0 else 1.0,
        contrast=current.contrast,
        still_s=still_s,
    )
    judge_cover = reference.contrast >= 2 * settings.min_contrast
    judge_focus = reference.sharpness >= MIN_REFERENCE_SHARPNESS
    if still_s >= settings.frozen_after_s and current.contrast >= settings.min_contrast:
        return ViewHealth.FROZEN, measures
    if judge_cover and (
        current.contrast < settings.min_contrast
        or (measures.edge_ratio < settings.min_edge_ratio and layout < MIN_LAYOUT)
    ):
        return ViewHealth.COVERED, measures
    if judge_focus and measures.sharpness_ratio < settings.min_sharpness_ratio and layout >= MIN_LAYOUT:
        return ViewHealth.BLURRED, measures
    if measures.shift_px > settings.max_shift_px or layout < MIN_LAYOUT:
        return ViewHealth.MOVED, measures
    return ViewHealth.OK, measures


@dataclass(frozen=True, slots=True)
class HealthChange:
    """The view's health changed at ``at_s`` (frame time)."""

    at_s: float
    health: ViewHealth
    previous: ViewHealth


class ViewMonitor:
    """Checks one camera's view every ``check_every_s`` seconds of frame time.

    ``bad_checks`` failing checks in a row mark the view wrong (one flicker is not an outage);
    one good check clears it. Without a reference the first frame seen becomes it
    (``needs_reference`` tells the caller to keep it on disk).
    """

    def __init__(self, settings: HealthConfig, reference: Image | None = None) -> None:
        self.settings = settings
        self._reference = None if reference is None else Features.of(reference)
        self.needs_reference = reference is None
        self.health = ViewHealth.OK
        self.since_s: float | None = None
        self.checked_s: float | None = None
        self.measures: Measures | None = None
        self.checks = 0
        self._verdict = ViewHealth.OK
        self._streak = 0
        self._previous: Features | None = None
        self._still_since: float | None = None

    def set_reference(self, image: Image) -> None:
        self._reference = Features.of(image)
        self.needs_reference = False

    @property
    def ok(self) -> bool:
        return self.health is ViewHealth.OK

    def due(self, t: float) -> bool:
        return self.checked_s is None or t - self.checked_s >= self.settings.check_every_s

    def check(self, image: Image, t: float) -> HealthChange | None:
        """Judge ``image`` taken at ``t``; the change of health it causes, if any."""
        current = Features.of(image)
        if self._reference is None:
            self.set_reference(image)
            self.needs_reference = True
        assert self._reference is not None
        if self._previous is not None and self._previous.gray.shape == current.gray.shape:
            diff = float(np.abs(self._previous.gray - current.gray).mean())
            if diff > self.settings.frozen_diff:
                self._still_since = t
        else:
            self._still_since = t
        self._previous = current
        still_s = 0.0 if self._still_since is None else t - self._still_since
        verdict, self.measures = classify(self._reference, current, still_s, self.settings)
        self.checked_s = t
        self.checks += 1
        self._streak = self._streak + 1 if verdict is self._verdict else 1
        self._verdict = verdict
        wanted = verdict if verdict is ViewHealth.OK or self._streak >= self.settings.bad_checks else None
        if wanted is None or wanted is self.health:
            return None
        change = HealthChange(t, wanted, self.health)
        self.health = wanted
        self.since_s = t
        return change

    def report(self) -> dict[str, object]:
        """The heartbeat's ``health`` object of this camera (contract: CameraHealth)."""
        out: dict[str, object] = {"state": self.health.value, "checks": self.checks}
        if self.since_s is not None:
            out["since_s"] = self.since_s
        if self.checked_s is not None:
            out["checked_s"] = self.checked_s
        if self.measures is not None:
            out["measures"] = self.measures.rounded()
        return out


class ReferenceStore:
    """One reference frame per camera, as ``<dir>/<camera_id>.png`` on the gateway."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, camera_id: str) -> Path:
        return self.directory / f"{camera_id}.png"

    def load(self, camera_id: str) -> Image | None:
        path = self.path(camera_id)
        if not path.exists():
            return None
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            logger.warning("reference frame %s cannot be read; taking a new one", path)
            return None
        return np.asarray(image, dtype=np.uint8)

    def save(self, camera_id: str, image: Image) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(camera_id)
        tmp = path.with_suffix(".tmp.png")
        if not cv2.imwrite(str(tmp), image):
            raise OSError(f"cannot write reference frame {path}")
        tmp.replace(path)
        return path
