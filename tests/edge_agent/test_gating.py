"""Motion-gated detection: the motion measure, the scheduler's reasons, fair rationing, status."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.gating import FIRST, MOTION, RECHECK, DetectionScheduler, GateSettings, ZoneMotion, ration
from edge_agent.sources import Frame
from takt.contract import CameraStatus

SIZE = (320, 180)
LEFT = [(10.0, 10.0), (150.0, 10.0), (150.0, 170.0), (10.0, 170.0)]
RIGHT = [(170.0, 10.0), (310.0, 10.0), (310.0, 170.0), (170.0, 170.0)]


def _floor(seed: int = 1) -> np.ndarray:
    """A textured grey floor with a little sensor noise, like a compressed camera frame."""
    rng = np.random.default_rng(seed)
    base = np.full((SIZE[1], SIZE[0], 3), 120, np.uint8)
    base[::8, :, :] = 90  # tile seams
    noise = rng.integers(-3, 4, size=base.shape)
    return np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)


def _with_person(image: np.ndarray, x: int, y: int) -> np.ndarray:
    out = image.copy()
    out[y : y + 40, x : x + 16] = 30  # a dark coat from above
    return out


def test_motion_is_measured_per_zone_against_the_frame_the_detector_last_saw() -> None:
    motion = ZoneMotion({"left": LEFT, "right": RIGHT}, SIZE, GateSettings(motion_width=320))
    first = _floor(1)
    assert motion.moving(motion.measure(first)) == ["left", "right"]  # nothing seen yet
    motion.seen()
    # The same floor with new sensor noise: not motion.
    assert motion.moving(motion.measure(_floor(2))) == []
    # Someone walks into the left zone: only the left zone moved.
    shares = motion.measure(_with_person(_floor(3), 60, 60))
    assert motion.moving(shares) == ["left"]
    assert shares["left"] > 0.01 > shares["right"]
    # Not detected yet: the change stays until the detector sees a frame with it.
    assert motion.moving(motion.measure(_with_person(_floor(4), 60, 60))) == ["left"]
    motion.seen()
    assert motion.moving(motion.measure(_with_person(_floor(5), 60, 60))) == []


def test_a_zone_outside_the_frame_never_moves() -> None:
    motion = ZoneMotion({"off": [(400.0, 0.0), (500.0, 0.0), (500.0, 50.0)]}, SIZE, GateSettings())
    assert motion.measure(_floor()) == {}


def test_the_scheduler_detects_first_on_motion_and_rechecks_a_still_camera() -> None:
    scheduler = DetectionScheduler(GateSettings(recheck_s=2.0))
    assert scheduler.reason(100.0, []) == FIRST
    scheduler.detected(100.0, FIRST)
    # A camera without motion: its last detections hold until the re-check is due.
    reasons = {}
    for k in range(1, 30):
        t = 100.0 + k * 0.2
        reason = scheduler.reason(t, [])
        reasons[round(t, 1)] = reason
        if reason is None:
            scheduler.skipped(t, wanted=False)
        else:
            scheduler.detected(t, reason)
    rechecks = [t for t, r in reasons.items() if r == RECHECK]
    assert rechecks == [102.0, 104.0]
    assert scheduler.frames_gated == 27 and scheduler.by_reason[RECHECK] == 2
    assert scheduler.reason(105.9, ["zone:a"]) == MOTION
    # Time going backwards (a looped file restarting) or a reset: seen afresh.
    assert scheduler.reason(50.0, []) == FIRST
    scheduler.reset()
    assert scheduler.reason(105.9, []) == FIRST


def test_status_figures_tell_an_overloaded_camera() -> None:
    scheduler = DetectionScheduler(GateSettings(recheck_s=2.0), window_s=10.0)
    scheduler.detected(0.0, FIRST)
    for k in range(1, 26):  # five seconds at 5 fps, every frame wanting the detector, none served
        scheduler.skipped(k * 0.2, wanted=True)
    assert scheduler.frames_deferred == 25 and scheduler.frames_gated == 0
    assert scheduler.detection_age_s == pytest.approx(5.0)
    assert scheduler.detection_age_max_s == pytest.approx(5.0)
    assert scheduler.detect_fps == pytest.approx(1 / 5.0)
    scheduler.detected(5.2, MOTION)
    assert scheduler.detection_age_s == 0.0
    assert scheduler.detection_age_max_s == pytest.approx(5.0)  # the lag stays visible for a while


def test_ration_serves_the_oldest_detections_first() -> None:
    assert ration([0.4, 1.2, None, 0.8], 2) == [1, 2]
    assert ration([0.4, 1.2, None, 0.8], 3) == [1, 2, 3]
    assert ration([0.4, 0.2], 0) == [0]  # at least one: the detector always makes progress
    # Round after round, with room for one, every camera gets its turn.
    ages = [0.0, 0.0, 0.0, 0.0]
    served: list[int] = []
    for _ in range(8):
        (chosen,) = ration(ages, 1)
        served.append(chosen)
        ages = [0.0 if i == chosen else a + 0.2 for i, a in enumerate(ages)]
    assert sorted(served[:4]) == [0, 1, 2, 3] and served[4:] == served[:4]


def _still_camera(tmp_path_str: str, enabled: bool) -> Agent:
    doc = {
        "site_id": "s",
        "gateway_id": "gw",
        "camera": {"id": "cam", "source": "unused.mp4"},
        "detector": {"backend": "motion", "gating": {"enabled": enabled}},
        "stations": [{"id": "st", "zone": [[0, 0], [100, 0], [100, 100], [0, 100]]}],
        "mqtt": {"url": "mqtt://x@h"},
        "buffer": {"path": f"{tmp_path_str}/b.sqlite"},
    }
    return Agent(parse_config(doc))


def test_detectors_with_state_between_frames_are_never_gated(tmp_path: object) -> None:
    """MOG2 learns its background from every frame: the motion backend sees them all."""
    agent = _still_camera(str(tmp_path), enabled=True)
    image = _floor()
    for i in range(10):
        agent.process_frame(Frame(image, 1000.0 + i * 0.2, i))
    status = CameraStatus.model_validate(agent.status_fields()["cameras"][0])
    assert status.gated is False
    assert status.detections == 10 and status.frames_gated == 0
    agent.buffer.close()
