from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.config import CameraConfig
from edge_agent.sources import CameraError, Frame, Outage, VideoSource, grab_one
from edge_agent.synthetic import render

START = datetime(2026, 11, 23, 8, tzinfo=UTC)


def _clip(path: Path, frames: int, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 5 % 255, np.uint8))
    writer.release()
    return path


def test_file_is_sampled_and_stamped_from_the_video_timeline(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "c.avi", 40)  # 4 s at 10 fps
    config = CameraConfig(id="c", source=str(clip), sample_fps=2.5, start_time=START)
    frames = list(VideoSource(config).frames(threading.Event()))
    assert all(isinstance(f, Frame) for f in frames)
    stamps = [f.timestamp_s - START.timestamp() for f in frames if isinstance(f, Frame)]
    assert stamps == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 2.4, 2.8, 3.2, 3.6])


def test_looping_file_continues_the_timeline(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "c.avi", 10)
    config = CameraConfig(id="c", source=str(clip), sample_fps=10, loop=True, start_time=START)
    stop = threading.Event()
    stamps = []
    for item in VideoSource(config).frames(stop):
        assert isinstance(item, Frame)
        stamps.append(round(item.timestamp_s - START.timestamp(), 3))
        if len(stamps) == 25:
            stop.set()
    assert stamps == [round(i / 10, 3) for i in range(25)]


def test_unreachable_stream_reports_outages_and_retries() -> None:
    config = CameraConfig(
        id="c", source="rtsp://127.0.0.1:1/none", reconnect_min_s=0.01, reconnect_max_s=0.02
    )
    stop = threading.Event()
    source = VideoSource(config)
    outages = []
    for item in source.frames(stop):
        assert isinstance(item, Outage)
        outages.append(item)
        if len(outages) == 2:
            stop.set()
    assert source.state == "reconnecting"
    assert outages[0].last_good_s is None


def test_grab_one_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="does not exist"):
        grab_one(CameraConfig(id="c", source=str(tmp_path / "nope.avi")))


def test_synthetic_footage_is_deterministic(tmp_path: Path) -> None:
    _, a = render(tmp_path / "a", seed=3, duration_s=20)
    _, b = render(tmp_path / "b", seed=3, duration_s=20)
    _, c = render(tmp_path / "c", seed=4, duration_s=20)
    assert a.read_text() == b.read_text()
    assert a.read_text() != c.read_text()
