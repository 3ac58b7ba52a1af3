"""The composition root: wires camera, detector, station logic, buffer and publisher from a config."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from pydantic import ValidationError

from edge_agent.activity import Segment, StateChange, StationEvent, StationStateMachine
from edge_agent.buffer import EventBuffer
from edge_agent.config import ConfigError, DetectorConfig, EdgeConfig, MotionConfig
from edge_agent.counting import Crossing, LineCounter
from edge_agent.detect.base import Detection, Detector, Image
from edge_agent.detect.tracker import CentroidTracker
from edge_agent.energy import Keypoints, MotionEnergy, keypoint_activity
from edge_agent.identity import IdentityResolver, RosterEntry
from edge_agent.publisher import Publisher, PublisherSettings
from edge_agent.sources import Frame, Outage, VideoSource
from edge_agent.zones import Line, Polygon, to_pixels
from takt.contract import Event, EventType
from takt.mqtt import MqttEndpoint

logger = logging.getLogger(__name__)


def build_detector(config: EdgeConfig) -> Detector:
    return build_detector_for(config.detector)


def build_detector_for(det: DetectorConfig) -> Detector:
    """The backend for ``det``; every file it reads comes through the registry's hash check."""
    from models.registry import ModelRegistryError, resolve

    manifest = path = None
    if det.model is not None:
        manifest, path = resolve(det.models_dir, det.model)
        expected = {"yolo": ("onnx", "pt"), "motion": ("motion",), "replay": ("replay",)}[det.backend]
        if manifest.format not in expected:
            raise ModelRegistryError(
                f"{det.model} is a {manifest.format} model; the {det.backend} backend needs "
                f"format {' or '.join(expected)}"
            )
    if det.backend == "motion":
        from edge_agent.detect.motion import MotionDetector

        if manifest is None or path is None:
            return MotionDetector(det.motion, det.person_label)
        return MotionDetector(
            load_motion_params(path, det.motion), det.person_label, model_version=manifest.model_version
        )
    if det.backend == "replay":
        from edge_agent.detect.replay import ReplayDetector

        if manifest is None or path is None:
            assert det.replay_file is not None
            return ReplayDetector(det.replay_file)
        return ReplayDetector(path, model_version=manifest.model_version)
    from edge_agent.detect.yolo import build_yolo

    assert manifest is not None and path is not None
    wanted = frozenset({det.person_label, *det.product_labels})
    return build_yolo(manifest, path, wanted, det.runtime, det.confidence, det.tiling)


def load_motion_params(path: Path, base: MotionConfig) -> MotionConfig:
    """A registered motion 'model': YAML of MotionConfig fields over the config's own."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return MotionConfig.model_validate({**base.model_dump(), **data})
    except (yaml.YAMLError, ValidationError, TypeError) as exc:
        raise ConfigError(f"motion parameters {path}: {exc}") from None


def make_buffer(config: EdgeConfig) -> EventBuffer:
    buf = config.buffer
    return EventBuffer(
        buf.path,
        max_bytes=int(buf.max_mb * 1024 * 1024),
        max_age_s=None if buf.max_age_h is None else buf.max_age_h * 3600,
        synchronous=buf.synchronous,
    )


def publisher_settings(config: EdgeConfig) -> PublisherSettings:
    m = config.mqtt
    return PublisherSettings(
        batch_max_events=m.batch_max_events,
        ack_timeout_s=m.ack_timeout_s,
        max_inflight_batches=m.max_inflight_batches,
        replay_max_events_per_s=m.replay_max_events_per_s,
        heartbeat_s=m.heartbeat_s,
        connect_timeout_s=m.connect_timeout_s,
        reconnect_min_s=m.reconnect_min_s,
        reconnect_max_s=m.reconnect_max_s,
        keepalive_s=m.keepalive_s,
    )


@dataclass(frozen=True, slots=True)
class Geometry:
    """Zones and lines in the pixels of the frames the detector sees."""

    size: tuple[int, int]
    zones: dict[str, Polygon]
    lines: dict[str, Line]


def build_geometry(config: EdgeConfig, original: tuple[int, int], processed: tuple[int, int]) -> Geometry:
    ow, oh = original
    sx, sy = processed[0] / ow, processed[1] / oh

    def scale(points: list[tuple[float, float]], normalized: bool) -> list[tuple[float, float]]:
        return [(x * sx, y * sy) for x, y in to_pixels(points, ow, oh, normalized)]

    zones = {s.id: Polygon(tuple(scale(s.zone, s.normalized))) for s in config.stations}
    lines = {}
    for c in config.count_lines:
        a, b = scale(c.points, c.normalized)
        lines[c.id] = Line(a, b)
    return Geometry(processed, zones, lines)


class Agent:
    def __init__(
        self,
        config: EdgeConfig,
        *,
        detector: Detector | None = None,
        buffer: EventBuffer | None = None,
        shadow_detector: Detector | None = None,
        shadow: bool = False,
        identity: IdentityResolver | None = None,
    ) -> None:
        self.config = config
        # A shadow agent runs a candidate model on the production agent's frames:
        # its own tracker and station state, the same buffer (so the same seq
        # sequence) and the same worker identities, events tagged shadow.
        self.shadow = shadow
        self.config_version = config.config_version()
        self.detector = detector if detector is not None else build_detector(config)
        self.model_version = self.detector.model_version
        self.tracker = None if self.detector.tracks else CentroidTracker()
        self.energy = MotionEnergy()
        self.identity = identity or IdentityResolver(
            [
                RosterEntry(r.station_id, r.worker_id, r.start, r.end, frozenset(r.weekdays))
                for r in config.roster
            ],
            dict(config.badges.markers),
            config.tz,
            badge_hold_s=config.badges.hold_s,
            outgoing=config.privacy.outgoing(config.site_id),
        )
        self.buffer = buffer if buffer is not None else make_buffer(config)
        self.shadow_agent: Agent | None = None
        self.shadow_error: str | None = None
        candidate = config.detector.shadow
        if candidate is not None and not shadow:
            self.shadow_agent = Agent(
                config.model_copy(update={"detector": candidate}),
                detector=shadow_detector if shadow_detector is not None else build_detector_for(candidate),
                buffer=self.buffer,
                shadow=True,
                identity=self.identity,
            )
            logger.info("shadow mode: %s beside %s", self.shadow_agent.model_version, self.model_version)
        self.machines = {
            s.id: StationStateMachine(s.id, s.thresholds(config.segment_period_s)) for s in config.stations
        }
        self.stations = {s.id: s for s in config.stations}
        self.geometry: Geometry | None = None
        self.counters: list[LineCounter] = []
        self._line_station = {c.id: c.station_id for c in config.count_lines}
        self._aruco: Any = None
        if config.badges.enabled and not shadow:
            dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, config.badges.dictionary))
            self._aruco = cv2.aruco.ArucoDetector(dictionary, cv2.aruco.DetectorParameters())
        self.camera_state = "starting"
        self.frames = 0
        self.events_made = 0
        self.last_detections: list[Detection] = []
        self._last_s: float | None = None
        self._poses: dict[int, Keypoints] = {}
        self._latency_ms = 0.0
        self._fps = 0.0
        self._last_wall: float | None = None

    # -- per frame ----------------------------------------------------------------------
    def prepare(self, image: Image) -> Image:
        width = self.config.camera.process_width
        h, w = image.shape[:2]
        if width is not None and w > width:
            image = np.asarray(
                cv2.resize(image, (width, round(h * width / w)), interpolation=cv2.INTER_AREA), dtype=np.uint8
            )
        if self.geometry is None or self.geometry.size != (image.shape[1], image.shape[0]):
            self.geometry = build_geometry(self.config, (w, h), (image.shape[1], image.shape[0]))
            self.counters = [
                LineCounter(
                    c.id,
                    self.geometry.lines[c.id],
                    frozenset(c.labels),
                    direction=c.direction,
                    dead_band_px=c.dead_band_px,
                )
                for c in self.config.count_lines
            ]
        return image

    def process_frame(self, frame: Frame) -> list[Event]:
        t = frame.timestamp_s
        out: list[StationEvent | Crossing] = []
        if self._last_s is not None and t - self._last_s > self.config.camera.max_gap_s:
            # Frames stopped for a while: that time is unobserved, not absence.
            out.extend(self._close_all(self._last_s))
        image = self.prepare(frame.image)
        assert self.geometry is not None
        started = time.perf_counter()
        detections = self.detector.detect(image, t)
        self._latency_ms = 0.9 * self._latency_ms + 0.1 * (time.perf_counter() - started) * 1000
        if self.tracker is not None:
            detections = self.tracker.update(detections)
        self.last_detections = detections
        self.energy.update(image)
        if self._aruco is not None and self.frames % self.config.badges.every_n_frames == 0:
            self._read_badges(image, t)
        person = self.config.detector.person_label
        for station_id, machine in self.machines.items():
            zone = self.geometry.zones[station_id]
            anchor = self.stations[station_id].anchor
            people = [
                d
                for d in detections
                if d.label == person and zone.contains(d.center if anchor == "center" else d.bottom)
            ]
            activity = max((self._activity(d) for d in people), default=0.0)
            confidence = max((d.confidence for d in people), default=1.0)
            out.extend(
                machine.observe(
                    t,
                    present=bool(people),
                    activity=activity,
                    confidence=confidence,
                    worker_id=self.identity.resolve(station_id, t),
                )
            )
        for counter in self.counters:
            out.extend(counter.update(detections, t))
        self._poses = {d.track_id: d.keypoints for d in detections if d.keypoints and d.track_id is not None}
        self._last_s = t
        self.frames += 1
        self.camera_state = "ok"
        now = time.monotonic()
        if self._last_wall is not None and now > self._last_wall:
            self._fps = 0.9 * self._fps + 0.1 / (now - self._last_wall)
        self._last_wall = now
        return self._commit(out) + self._in_shadow(lambda a: a.process_frame(frame))

    def _in_shadow(self, step: Callable[[Agent], list[Event]]) -> list[Event]:
        """Run ``step`` on the shadow agent; a failing candidate is switched off, production goes on."""
        if self.shadow_agent is None:
            return []
        try:
            return step(self.shadow_agent)
        except Exception as exc:  # whatever the candidate does, production events must keep flowing
            logger.exception("shadow model %s failed; shadow mode off", self.shadow_agent.model_version)
            self.shadow_error = f"{type(exc).__name__}: {exc}"
            self.shadow_agent.detector.close()
            self.shadow_agent = None
            return []

    def _activity(self, person: Detection) -> float:
        previous = self._poses.get(person.track_id) if person.track_id is not None else None
        if person.keypoints and previous:
            return keypoint_activity(previous, person.keypoints, person.box)
        return self.energy.energy(person.box)

    def camera_lost(self, outage: Outage) -> list[Event]:
        self.camera_state = "reconnecting"
        logger.warning("camera %s: %s", self.config.camera.id, outage.reason)
        last = outage.last_good_s if outage.last_good_s is not None else self._last_s
        return self._commit(self._close_all(last)) + self._in_shadow(lambda a: a.camera_lost(outage))

    def finish(self) -> list[Event]:
        """Close every open segment at the last good frame (end of file, agent stopping)."""
        return self._commit(self._close_all(self._last_s)) + self._in_shadow(lambda a: a.finish())

    def _close_all(self, at_s: float | None) -> list[StationEvent]:
        out: list[StationEvent] = []
        for machine in self.machines.values():
            out.extend(machine.close(at_s))
        return out

    def _read_badges(self, image: Image, t: float) -> None:
        assert self.geometry is not None
        corners, ids, _ = self._aruco.detectMarkers(image)
        if ids is None:
            return
        for quad, marker in zip(corners, np.asarray(ids).flatten(), strict=True):
            cx, cy = (float(v) for v in np.asarray(quad).reshape(-1, 2).mean(axis=0))
            for station_id, zone in self.geometry.zones.items():
                if zone.contains((cx, cy)):
                    self.identity.badge_seen(station_id, int(marker), t)

    # -- events -------------------------------------------------------------------------
    def _event(
        self,
        station_id: str,
        worker_id: str,
        event_type: EventType,
        at_s: float,
        confidence: float,
        *,
        duration_s: float | None = None,
        count: int = 0,
    ) -> Event:
        return Event(
            event_id=uuid.uuid4(),
            timestamp=datetime.fromtimestamp(at_s, UTC),
            worker_id=worker_id,
            station_id=station_id,
            event_type=event_type,
            confidence=round(min(1.0, max(0.0, confidence)), 4),
            count=count,
            duration_s=duration_s,
            model_version=self.model_version,
            camera_id=self.config.camera.id,
            site_id=self.config.site_id,
            gateway_id=self.config.gateway_id,
            config_version=self.config_version,
            shadow=self.shadow,
        )

    def _commit(self, items: Sequence[StationEvent | Crossing]) -> list[Event]:
        events: list[Event] = []
        for item in items:
            if isinstance(item, Segment):
                # Timestamps carry microseconds: derive the duration from the rounded ends
                # so start + duration never reaches past the minute boundary it was cut at.
                start = datetime.fromtimestamp(item.start_s, UTC)
                duration = (datetime.fromtimestamp(item.end_s, UTC) - start).total_seconds()
                if duration > 0:
                    events.append(
                        self._event(
                            item.station_id,
                            item.worker_id,
                            item.state,
                            item.start_s,
                            item.confidence,
                            duration_s=duration,
                        )
                    )
            elif isinstance(item, StateChange):
                # A change marks the moment; its time is carried by the segments (duration 0 here).
                events.append(
                    self._event(
                        item.station_id,
                        item.worker_id,
                        item.state,
                        item.at_s,
                        item.confidence,
                        duration_s=0.0,
                    )
                )
            else:
                station_id = self._line_station[item.line_id]
                events.append(
                    self._event(
                        station_id,
                        self.identity.resolve(station_id, item.timestamp_s),
                        EventType.PRODUCT_COUNT,
                        item.timestamp_s,
                        item.confidence,
                        count=1,
                    )
                )
        if events:
            # On disk before anything may publish it.
            self.buffer.append(events)
            self.events_made += len(events)
        return events

    def status_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "model_version": self.model_version,
            "camera_state": self.camera_state,
            "fps": round(self._fps, 2),
            "detector_latency_ms": round(self._latency_ms, 2),
            "camera_id": self.config.camera.id,
            "config_version": self.config_version,
            "frames": self.frames,
        }
        if self.shadow_agent is not None:
            fields["shadow_model_version"] = self.shadow_agent.model_version
            fields["shadow_detector_latency_ms"] = round(self.shadow_agent._latency_ms, 2)
        if self.shadow_error is not None:
            fields["shadow_error"] = self.shadow_error
        return fields

    # -- the loop -----------------------------------------------------------------------
    def run(
        self,
        stop: threading.Event,
        *,
        publish: bool = True,
        exit_at_end: bool = False,
        drain_timeout_s: float = 60.0,
        max_frames: int | None = None,
    ) -> None:
        publisher: Publisher | None = None
        if publish:
            endpoint = MqttEndpoint.from_url(self.config.mqtt.resolved_url(), self.config.mqtt.ca_file)
            publisher = Publisher(
                self.buffer,
                endpoint,
                self.config.site_id,
                self.config.gateway_id,
                publisher_settings(self.config),
                status_fields=self.status_fields,
            )
            publisher.start()
        source = VideoSource(self.config.camera)
        try:
            for item in source.frames(stop):
                if publisher is not None and publisher.fatal is not None:
                    raise publisher.fatal
                if isinstance(item, Outage):
                    self.camera_lost(item)
                    continue
                self.process_frame(item)
                if max_frames is not None and self.frames >= max_frames:
                    break
            self.finish()
            self.camera_state = source.state
            logger.info("video source finished after %d frames; %d events", self.frames, self.events_made)
            if publisher is not None:
                if exit_at_end:
                    deadline = time.monotonic() + drain_timeout_s
                    while self.buffer.stats().backlog and time.monotonic() < deadline and not stop.is_set():
                        if publisher.fatal is not None:
                            raise publisher.fatal
                        stop.wait(0.1)
                else:
                    while not stop.wait(0.5):
                        if publisher.fatal is not None:
                            raise publisher.fatal
        finally:
            if publisher is not None:
                publisher.stop()
            self.detector.close()
            if self.shadow_agent is not None:
                self.shadow_agent.detector.close()
