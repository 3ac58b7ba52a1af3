"""Video in: files, RTSP/HTTP streams and V4L2 devices through OpenCV, sampled at a few fps.

Files are read as fast as possible (unless ``realtime``) and frames are stamped
from the video timeline (``start_time`` + position), so a recorded clip gives
the same events however fast the gateway is. Streams and devices are stamped
with the wall clock and reopened with jittered backoff when they drop.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from edge_agent import EdgeError
from edge_agent.config import CameraConfig
from edge_agent.detect.base import Image

logger = logging.getLogger(__name__)


class CameraError(EdgeError):
    """The camera cannot be opened or read (for ``takt edge check``)."""


@dataclass(frozen=True, slots=True)
class Frame:
    image: Image
    timestamp_s: float
    index: int
    # time.monotonic() when the frame was captured: frame-to-event latency starts here. Streams:
    # when it was grabbed, before decoding; files paced in real time: when it was due (a late
    # decoder counts against the latency); files read as fast as possible: when it was decoded.
    captured_mono: float = 0.0


@dataclass(frozen=True, slots=True)
class Outage:
    """The camera stopped delivering; states close at ``last_good_s``."""

    last_good_s: float | None
    reason: str


def is_file_source(source: str | int) -> bool:
    return isinstance(source, str) and "://" not in source and not source.startswith("/dev/video")


def open_capture(source: str | int) -> Any:
    if isinstance(source, str) and source.isdigit():
        source = int(source)
    if is_file_source(source) and not Path(str(source)).exists():
        raise CameraError(f"video file {source} does not exist")
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise CameraError(f"cannot open video source {source!r}")
    return capture


def grab_one(config: CameraConfig) -> Image:
    capture = open_capture(config.source)
    try:
        ok, image = capture.read()
        if not ok or image is None:
            raise CameraError(f"video source {config.source!r} opened but gave no frame")
        return image  # type: ignore[no-any-return]
    finally:
        capture.release()


class VideoSource:
    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        self.state = "starting"
        self.frames_read = 0
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography

    def frames(self, stop: threading.Event) -> Iterator[Frame | Outage]:
        if is_file_source(self.config.source):
            yield from self._file_frames(stop)
        else:
            yield from self._stream_frames(stop)

    def _file_frames(self, stop: threading.Event) -> Iterator[Frame | Outage]:
        start = self.config.start_time.timestamp() if self.config.start_time else time.time()
        offset_s = 0.0
        index = 0
        wall_start = time.monotonic()
        while not stop.is_set():
            capture = open_capture(self.config.source)
            native = capture.get(cv2.CAP_PROP_FPS) or 25.0
            if not 0 < native < 1000:
                native = 25.0
            step = max(1, round(native / self.config.sample_fps))
            position = 0
            self.state = "ok"
            try:
                while not stop.is_set():
                    if position % step:
                        if not capture.grab():
                            break
                        position += 1
                        continue
                    ok, image = capture.read()
                    if not ok or image is None:
                        break
                    video_s = offset_s + position / native
                    position += 1
                    captured = time.monotonic()
                    if self.config.realtime:
                        due = wall_start + video_s
                        if due > captured and stop.wait(due - captured):
                            return
                        captured = due
                    self.frames_read += 1
                    yield Frame(image, start + video_s, index, captured)
                    index += 1
            finally:
                capture.release()
            offset_s += position / native
            if not self.config.loop or position == 0:
                break
        self.state = "ended"

    def _stream_frames(self, stop: threading.Event) -> Iterator[Frame | Outage]:
        attempt = 0
        last_good: float | None = None
        index = 0
        interval = 1.0 / self.config.sample_fps
        while not stop.is_set():
            try:
                capture = open_capture(self.config.source)
            except CameraError as exc:
                self.state = "reconnecting"
                yield Outage(last_good, str(exc))
                ceiling = min(self.config.reconnect_max_s, self.config.reconnect_min_s * 2**attempt)
                attempt += 1
                stop.wait(self._rng.uniform(ceiling / 2, ceiling))
                continue
            attempt = 0
            self.state = "ok"
            next_emit = 0.0
            try:
                while not stop.is_set():
                    # Read every frame so the driver's queue never holds stale ones;
                    # decode and emit only at the sampling rate.
                    if not capture.grab():
                        break
                    now = time.time()
                    if now < next_emit:
                        continue
                    grabbed = time.monotonic()
                    ok, image = capture.retrieve()
                    if not ok or image is None:
                        break
                    next_emit = now + interval
                    last_good = now
                    self.frames_read += 1
                    yield Frame(image, now, index, grabbed)
                    index += 1
            finally:
                capture.release()
            if not stop.is_set():
                self.state = "reconnecting"
                logger.warning("video source %r dropped; reconnecting", self.config.source)
                yield Outage(last_good, "stream dropped")
