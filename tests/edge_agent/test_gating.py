"""Motion-gated detection: the motion measure, the scheduler's reasons, fair rationing, status."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.gating import FIRST, MOTION, RECHECK, DetectionScheduler, GateSettings, ZoneMotion, ration
from edge_agent.sources import Frame
from takt.contract import CameraStatus
from tests.edge_agent.onnx_models import register, write_tiny_yolo

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
    assert scheduler.overloaded  # waited, and on detections older than recheck_s
    scheduler.detected(5.2, MOTION)
    assert scheduler.detection_age_s == 0.0
    assert scheduler.detection_age_max_s == pytest.approx(5.0)  # the lag stays visible for a while
    for k in range(1, 60):  # served again: after a window without waiting, not overloaded
        scheduler.detected(5.2 + k * 0.2, MOTION)
    assert not scheduler.overloaded and scheduler.detection_age_max_s == 0.0


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


def test_detectors_with_state_between_frames_are_never_gated(tmp_path: Path) -> None:
    """MOG2 learns its background from every frame: the motion backend sees them all."""
    agent = _still_camera(str(tmp_path), enabled=True)
    image = _floor()
    for i in range(10):
        agent.process_frame(Frame(image, 1000.0 + i * 0.2, i))
    status = CameraStatus.model_validate(agent.status_fields()["cameras"][0])
    assert status.gated is False
    assert status.detections == 10 and status.frames_gated == 0
    agent.buffer.close()


def test_an_overloaded_detector_serves_live_cameras_in_turn(tmp_path: Path) -> None:
    """Four live cameras with motion in every frame and a detector with room for one frame per
    round: each round the camera whose detections are oldest is detected, the others reuse theirs;
    every frame still goes through the station logic and the detection age stays bounded."""
    from edge_agent.runner import GatewayRunner

    models = tmp_path / "models"
    models.mkdir()
    write_tiny_yolo(models / "t.onnx", 320, np.array([[160, 120, 40, 80, 0.9]], np.float32))
    register(models, "tiny", "1", models / "t.onnx", ["person"], 320)
    doc = {
        "site_id": "s",
        "gateway_id": "gw",
        "cameras": [
            {
                "id": f"cam-{i}",
                "source": str(tmp_path / "clip.avi"),
                "realtime": True,  # paced like a live camera: rationed
                "sample_fps": 5,
                "stations": [{"id": f"st-{i}", "zone": [list(p) for p in LEFT]}],
            }
            for i in range(4)
        ],
        "detector": {"backend": "yolo", "model": "tiny@1", "models_dir": str(models), "product_labels": []},
        "mqtt": {"url": "mqtt://x@h"},
        "buffer": {"path": str(tmp_path / "b.sqlite")},
    }
    agent = Agent(parse_config(doc))
    runner = GatewayRunner(agent)
    detector = agent.pipelines[0].detector
    served: list[list[int]] = []
    for k in range(13):  # one round for all, then three turns each
        t = 1000.0 + k * 0.2
        # Motion in every frame: someone walks across each camera's zone.
        batch = [(i, Frame(_with_person(_floor(k), 20 + 10 * k, 60), t, k)) for i in range(4)]
        if k:  # after the first round: the detector costs 150 ms a frame, 160 ms fit in a round
            runner._detector_ms[id(detector)] = 150.0
        before = [p.scheduler.detections for p in agent.pipelines]
        runner.step(batch, set())
        served.append([i for i, p in enumerate(agent.pipelines) if p.scheduler.detections > before[i]])
    assert served[0] == [0, 1, 2, 3]  # no estimate yet: all of them
    assert all(len(s) == 1 for s in served[1:])
    assert sorted(c for s in served[1:5] for c in s) == [0, 1, 2, 3]  # in turn, none twice
    assert served[5:9] == served[1:5]
    for p in agent.pipelines:
        assert p.frames == 13
        assert p.scheduler.frames_deferred == 9 and p.scheduler.frames_gated == 0
        assert p.scheduler.detection_age_max_s <= 0.8 + 1e-9  # four cameras, one a round
        assert not p.scheduler.overloaded  # deferred, but never past recheck_s
    status = CameraStatus.model_validate(agent.status_fields()["cameras"][0])
    assert status.frames_deferred == 9 and status.detection_age_max_s is not None
    agent.buffer.close()
