"""The run loop: camera threads decode, one detector thread batches across cameras, one publisher.

Each camera is read and decoded in a thread of its own into a small slot (two frames). The
calling thread is the detector thread: it takes at most one frame from every camera that has
one, runs them through the pipelines' pre-detection step, the detector (one batched call where
the backend offers ``detect_batch``, else one call per frame) and the station logic, in order per
camera. Files wait for the detector (every frame is used); live streams (and files paced in
real time) drop their oldest frame instead, so a slow detector means a lower frame rate, not
stale frames. With motion gating (edge_agent.gating, on by default for ONNX models) the detector
sees only the frames whose zones changed or whose camera is due a re-check, and under overload
it takes a bounded share of each frame interval, the cameras with the oldest detections first:
every frame is still used, at the price of older detections. One buffer and one MQTT
connection serve all cameras.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_agent.detect.base import Detection, Detector, Image
from edge_agent.gating import ration
from edge_agent.health import HealthChange
from edge_agent.pipeline import CameraPipeline
from edge_agent.publisher import Publisher
from edge_agent.sources import Frame, Outage, VideoSource, is_file_source
from takt.mqtt import MqttEndpoint

if TYPE_CHECKING:
    from edge_agent.agent import Agent

logger = logging.getLogger(__name__)
SLOT_FRAMES = 2


class _End:
    """A camera thread's last item: the source ended (``error`` set when it failed)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


Item = Frame | Outage | _End


class FrameSlots:
    """A few frames per camera between its decoding thread and the detector thread."""

    def __init__(self, cameras: int, capacity: int = SLOT_FRAMES) -> None:
        self._queues: list[deque[Item]] = [deque() for _ in range(cameras)]
        self._capacity = capacity
        self._cond = threading.Condition()
        self.dropped = [0] * cameras

    def put(self, camera: int, item: Item, *, wait: bool, stop: threading.Event) -> None:
        """Add ``item``; when full, wait for room (``wait``) or drop the camera's oldest frame.

        Outages and the end are never dropped, and never make a frame be dropped."""
        with self._cond:
            queue = self._queues[camera]
            while wait and len(queue) >= self._capacity and not stop.is_set():
                self._cond.wait(0.1)
            if len(queue) >= self._capacity and isinstance(item, Frame) and isinstance(queue[0], Frame):
                queue.popleft()
                self.dropped[camera] += 1
            queue.append(item)
            self._cond.notify_all()

    def take(self, timeout_s: float) -> list[tuple[int, Item]]:
        """The oldest item of every camera that has one (empty after ``timeout_s`` without any)."""
        with self._cond:
            if not any(self._queues):
                self._cond.wait(timeout_s)
            batch = [(i, q.popleft()) for i, q in enumerate(self._queues) if q]
            if batch:
                self._cond.notify_all()
            return batch


@dataclass(slots=True)
class _Todo:
    """A frame of one camera in the detector thread's round, and why it needs the detector."""

    index: int
    pipeline: CameraPipeline
    frame: Frame
    image: Image
    reason: str | None


def detect_batch(
    detector: Detector, images: Sequence[Image], times: Sequence[float]
) -> list[list[Detection]]:
    """One batched call where the backend has one, else one call per image."""
    batched = getattr(detector, "detect_batch", None)
    if batched is not None and len(images) > 1:
        result: list[list[Detection]] = batched(list(images), list(times))
        return result
    return [detector.detect(image, t) for image, t in zip(images, times, strict=True)]


class GatewayRunner:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.config = agent.config
        self.pipelines = agent.pipelines
        self.publisher: Publisher | None = None
        self.slots = FrameSlots(len(self.pipelines))
        self.sources = [VideoSource(p.camera) for p in self.pipelines]
        # A file paced in real time stands in for a live camera: it drops frames like one.
        self.live = [s.config.realtime or not is_file_source(s.config.source) for s in self.sources]
        self._detector_ms: dict[int, float] = {}  # recent detector time per frame, per detector

    def _camera_thread(self, index: int, stop: threading.Event, max_frames: int | None) -> None:
        source = self.sources[index]
        live = self.live[index]
        frames = 0
        end = _End()
        try:
            for item in source.frames(stop):
                self.slots.put(index, item, wait=not live, stop=stop)
                if isinstance(item, Frame):
                    frames += 1
                    if max_frames is not None and frames >= max_frames:
                        break
        except Exception as exc:  # handed to the detector thread, which stops the agent with it
            end = _End(exc)
        self.slots.put(index, end, wait=False, stop=stop)

    def _health_changed(self, pipeline: CameraPipeline, change: HealthChange) -> None:
        if self.publisher is not None:
            self.publisher.status_now()

    def step(self, batch: list[tuple[int, Item]], ended: set[int]) -> None:
        """One batch through the pipelines: pre-detection, the detector(s), station logic.

        Gated cameras (edge_agent.gating) give the detector only the frames that need it; of
        those from live cameras, the detector takes what fits in its share of the frame interval,
        the cameras with the oldest detections first, and the rest reuse their last detections."""
        todo: list[_Todo] = []
        for index, item in batch:
            pipeline = self.pipelines[index]
            pipeline.dropped_frames = self.slots.dropped[index]
            if isinstance(item, _End):
                ended.add(index)
                if item.error is not None:
                    raise item.error
            elif isinstance(item, Outage):
                pipeline.camera_lost(item)
            else:
                image, _ = pipeline.before_detect(item)
                if image is not None:
                    todo.append(_Todo(index, pipeline, item, image, pipeline.detection_reason(item, image)))
        groups: dict[int, list[_Todo]] = {}
        for entry in todo:
            if entry.reason is None:
                entry.pipeline.after_detect(entry.frame, entry.image, None)
            else:
                groups.setdefault(id(entry.pipeline.detector), []).append(entry)
        for key, entries in groups.items():
            chosen = self._ration(key, entries)
            detector = chosen[0].pipeline.detector
            started = time.perf_counter()
            found = detect_batch(detector, [e.image for e in chosen], [e.frame.timestamp_s for e in chosen])
            per_frame_ms = (time.perf_counter() - started) * 1000 / len(chosen)
            previous = self._detector_ms.get(key)
            self._detector_ms[key] = per_frame_ms if previous is None else 0.8 * previous + 0.2 * per_frame_ms
            results = {id(e): d for e, d in zip(chosen, found, strict=True)}
            for entry in entries:
                detections = results.get(id(entry))
                if detections is not None:
                    entry.pipeline.record_detector_ms(per_frame_ms)
                entry.pipeline.after_detect(entry.frame, entry.image, detections, entry.reason)

    def _ration(self, key: int, entries: list[_Todo]) -> list[_Todo]:
        """The frames the detector sees this round: every frame of files read as fast as they
        decode (they wait for it) and of ungated cameras; of gated live cameras as many as fit in
        ``max_detector_share`` of the frame interval at the detector's recent cost per frame."""
        rationed = [e for e in entries if e.pipeline.gated and self.live[e.index]]
        estimate = self._detector_ms.get(key)
        if not rationed or estimate is None:
            return entries
        fixed = [e for e in entries if not (e.pipeline.gated and self.live[e.index])]
        fps = max(e.pipeline.camera.sample_fps for e in rationed)
        share = rationed[0].pipeline.config.detector.gating.max_detector_share
        budget_ms = share * 1000.0 / fps - estimate * len(fixed)
        capacity = max(1, int(budget_ms // max(estimate, 1e-3)))
        picked = ration([e.pipeline.detection_age(e.frame) for e in rationed], capacity)
        keep = {id(rationed[i]) for i in picked} | {id(e) for e in fixed}
        return [e for e in entries if id(e) in keep]

    def _check_publisher(self) -> None:
        if self.publisher is not None and self.publisher.fatal is not None:
            raise self.publisher.fatal

    def run(
        self,
        stop: threading.Event,
        *,
        publish: bool = True,
        exit_at_end: bool = False,
        drain_timeout_s: float = 60.0,
        max_frames: int | None = None,
    ) -> None:
        agent = self.agent
        if publish:
            endpoint = MqttEndpoint.from_url(self.config.mqtt.resolved_url(), self.config.mqtt.ca_file)
            from edge_agent.agent import publisher_settings

            self.publisher = Publisher(
                agent.buffer,
                endpoint,
                self.config.site_id,
                self.config.gateway_id,
                publisher_settings(self.config),
                status_fields=agent.status_fields,
            )
            self.publisher.start()
        agent.health_listeners.append(self._health_changed)
        cameras_stop = threading.Event()
        threads = [
            threading.Thread(
                target=self._camera_thread,
                args=(i, cameras_stop, max_frames),
                name=f"takt-camera-{p.camera.id}",
                daemon=True,
            )
            for i, p in enumerate(self.pipelines)
        ]
        try:
            for thread in threads:
                thread.start()
            ended: set[int] = set()
            while len(ended) < len(self.pipelines) and not stop.is_set():
                self._check_publisher()
                batch = self.slots.take(0.2)
                if batch:
                    self.step(batch, ended)
            cameras_stop.set()
            agent.finish()
            for pipeline, source in zip(self.pipelines, self.sources, strict=True):
                pipeline.camera_state = source.state
            logger.info("video sources finished after %d frames; %d events", agent.frames, agent.events_made)
            if self.publisher is not None:
                self._drain(stop, exit_at_end, drain_timeout_s)
        finally:
            cameras_stop.set()
            for thread in threads:
                thread.join(5)
            agent.health_listeners.remove(self._health_changed)
            if self.publisher is not None:
                self.publisher.stop()
            agent.close()

    def _drain(self, stop: threading.Event, exit_at_end: bool, drain_timeout_s: float) -> None:
        if exit_at_end:
            deadline = time.monotonic() + drain_timeout_s
            while self.agent.buffer.stats().backlog and time.monotonic() < deadline and not stop.is_set():
                self._check_publisher()
                stop.wait(0.1)
        else:
            while not stop.wait(0.5):
                self._check_publisher()
