"""One camera's frame pipeline: frame -> detections -> zone activity -> states and counts -> events.

A :class:`CameraPipeline` is built by the composition root (:mod:`edge_agent.agent`) and fed by
the run loop (:mod:`edge_agent.runner`). Detection is the one step it does not always do itself:
the run loop batches frames of several cameras through one detector, so a frame goes through
:meth:`CameraPipeline.before_detect` (gaps, camera health, resizing), the detector, then
:meth:`CameraPipeline.after_detect` (tracking, zones, state machines, line counters, events
committed to the buffer). :meth:`CameraPipeline.process_frame` does all three for one frame.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np

from edge_agent.activity import Segment, StateChange, StationEvent, StationStateMachine
from edge_agent.buffer import EventBuffer
from edge_agent.config import EdgeConfig
from edge_agent.counting import Crossing, LineCounter
from edge_agent.detect.base import Box, Detection, Detector, Image
from edge_agent.detect.tracker import CentroidTracker
from edge_agent.energy import Keypoints, MotionEnergy, keypoint_activity
from edge_agent.gating import DetectionScheduler, ZoneMotion, line_band
from edge_agent.health import HealthChange, ReferenceStore, ViewMonitor
from edge_agent.identity import IdentityResolver
from edge_agent.privacy import blur_regions, scaled
from edge_agent.sources import Frame, Outage
from edge_agent.zones import Line, Polygon, to_pixels
from takt.contract import Event, EventType, ViewHealth

logger = logging.getLogger(__name__)


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


def _iso(at_s: float | None) -> str | None:
    return None if at_s is None else datetime.fromtimestamp(at_s, UTC).isoformat()


class CameraPipeline:
    """Station logic for one camera (a single-camera ``view`` of the gateway's config).

    A shadow pipeline runs a candidate model on the same frames: its own tracker and station
    state, the same buffer (so the same seq sequence) and identities, events tagged shadow.
    """

    def __init__(
        self,
        view: EdgeConfig,
        detector: Detector,
        buffer: EventBuffer,
        identity: IdentityResolver,
        *,
        shadow: bool = False,
        shadow_pipeline: CameraPipeline | None = None,
        aruco: Any = None,
        monitor: ViewMonitor | None = None,
        references: ReferenceStore | None = None,
        on_health_change: Callable[[CameraPipeline, HealthChange], None] | None = None,
    ) -> None:
        self.config = view
        self.camera = view.single_camera
        self.shadow = shadow
        self.config_version = view.config_version()
        self.detector = detector
        self.model_version = detector.model_version
        self.tracker = None if detector.tracks else CentroidTracker()
        gating = view.detector.gating
        # Gated only where skipping frames loses nothing: a detector with no state between frames.
        self.gated = gating.enabled and bool(getattr(detector, "shareable", False))
        self.scheduler = DetectionScheduler(gating.settings())
        self.zone_motion: ZoneMotion | None = None
        self.energy = MotionEnergy()
        self.identity = identity
        self.buffer = buffer
        self.shadow_pipeline = shadow_pipeline
        self.shadow_error: str | None = None
        self.monitor = monitor
        self.references = references
        self._reference_due = False
        self.on_health_change = on_health_change
        self.machines = {
            s.id: StationStateMachine(s.id, s.thresholds(view.segment_period_s)) for s in view.stations
        }
        self.stations = {s.id: s for s in view.stations}
        self.geometry: Geometry | None = None
        self.counters: list[LineCounter] = []
        self._line_station = {c.id: c.station_id for c in view.count_lines}
        self._aruco = aruco
        self.camera_state = "starting"
        self.frames = 0
        self.events_made = 0
        self.dropped_frames = 0
        self.last_detections: list[Detection] = []
        # Frame-to-event latency (decode to committed) of recent frames that made events.
        self.event_latency_ms: deque[float] = deque(maxlen=10_000)
        # ... and of every frame (capture to station logic done): what bounds the above.
        self.frame_latency_ms: deque[float] = deque(maxlen=10_000)
        # Change to detection: from the capture of the first frame that wanted the detector
        # (motion, re-check) to the detector's results for this camera committed. Under overload
        # a wanting frame waits its turn: this is the latency a gated camera really has.
        self.detect_latency_ms: deque[float] = deque(maxlen=10_000)
        self._wanted_since: float | None = None
        self._last_s: float | None = None
        self._poses: dict[int, Keypoints] = {}
        self._latency_ms = 0.0
        self._fps = 0.0
        self._last_wall: float | None = None

    # -- figures others read ------------------------------------------------------------
    @property
    def latency_ms(self) -> float:
        """Detector time per frame (moving average)."""
        return self._latency_ms

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def last_frame_s(self) -> float | None:
        return self._last_s

    @property
    def view_ok(self) -> bool:
        return self.monitor is None or self.monitor.ok

    def record_detector_ms(self, ms: float) -> None:
        self._latency_ms = 0.9 * self._latency_ms + 0.1 * ms

    # -- per frame ----------------------------------------------------------------------
    def prepare(self, image: Image) -> Image:
        width = self.camera.process_width
        h, w = image.shape[:2]
        if width is not None and w > width:
            image = np.asarray(
                cv2.resize(image, (width, round(h * width / w)), interpolation=cv2.INTER_AREA), dtype=np.uint8
            )
        if self.geometry is None or self.geometry.size != (image.shape[1], image.shape[0]):
            self.geometry = build_geometry(self.config, (w, h), (image.shape[1], image.shape[0]))
            gating = self.config.detector.gating
            regions = {f"zone:{k}": list(z.points) for k, z in self.geometry.zones.items()}
            for k, line in self.geometry.lines.items():
                regions[f"line:{k}"] = line_band(line.a, line.b, gating.line_band_px)
            self.zone_motion = ZoneMotion(regions, self.geometry.size, gating.settings())
            self.scheduler.reset()
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
        """The whole pipeline for one frame, detector included."""
        image, events = self.before_detect(frame)
        if image is None:
            return events
        reason = self.detection_reason(frame, image)
        if reason is None:
            return events + self.after_detect(frame, image, None)
        started = time.perf_counter()
        detections = self.detector.detect(image, frame.timestamp_s)
        self.record_detector_ms((time.perf_counter() - started) * 1000)
        return events + self.after_detect(frame, image, detections, reason)

    def detection_reason(self, frame: Frame, image: Image) -> str | None:
        """Why the detector must see this frame (edge_agent.gating); None: the last detections hold.

        Ungated pipelines answer ``every_frame``. Call once per frame, after :meth:`before_detect`."""
        if not self.gated:
            return "every_frame"
        assert self.zone_motion is not None
        self.zone_motion.measure(image)
        return self.scheduler.reason(frame.timestamp_s, self.zone_motion.moving())

    def detection_age(self, frame: Frame) -> float | None:
        """Seconds of frame time since the detector last saw this camera (None: never)."""
        return self.scheduler.age_at(frame.timestamp_s)

    def before_detect(self, frame: Frame) -> tuple[Image | None, list[Event]]:
        """Gaps and camera health, then the image to detect on; None while the view is wrong."""
        t = frame.timestamp_s
        out: list[StationEvent | Crossing] = []
        if self._last_s is not None and t - self._last_s > self.camera.max_gap_s:
            # Frames stopped for a while: that time is unobserved, not absence.
            out.extend(self._close_all(self._last_s))
            self.scheduler.reset()
        self._count_frame(t)
        events: list[Event] = []
        if self.monitor is not None and self.monitor.due(t):
            events += self._check_view(frame)
        if not self.view_ok:
            # An outage, not absence: no states until the view is right again.
            self.scheduler.reset()
            return None, events + self.commit(out)
        return self.prepare(frame.image), events + self.commit(out)

    def after_detect(
        self, frame: Frame, image: Image, detections: list[Detection] | None, reason: str | None = None
    ) -> list[Event]:
        """Station logic for the frame. ``detections`` None: the detector did not see it (no motion,
        or deferred under overload when ``reason`` is set); the last detections are reused."""
        t = frame.timestamp_s
        assert self.geometry is not None
        out: list[StationEvent | Crossing] = []
        seen = detections is not None
        if detections is None:
            detections = self.last_detections
            self.scheduler.skipped(t, wanted=reason is not None)
            if reason is not None and self._wanted_since is None:
                self._wanted_since = frame.captured_mono
        else:
            if self.tracker is not None:
                detections = self.tracker.update(detections)
            self.last_detections = detections
            self.scheduler.detected(t, reason)
            if self.gated and self.zone_motion is not None:
                self.zone_motion.seen()
        self.energy.update(image)
        if self._aruco is not None and (self.frames - 1) % self.config.badges.every_n_frames == 0:
            self._read_badges(image, t)
        person = self.config.detector.person_label
        if self._reference_due:
            self._save_reference(frame, image, [d.box for d in detections if d.label == person])
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
        events = self.commit(out)
        if frame.captured_mono:
            now = time.monotonic()
            age_ms = (now - frame.captured_mono) * 1000
            self.frame_latency_ms.append(age_ms)
            if events:
                self.event_latency_ms.append(age_ms)
            if seen:
                since = self._wanted_since if self._wanted_since is not None else frame.captured_mono
                self.detect_latency_ms.append((now - since) * 1000)
                self._wanted_since = None
        return events + self._in_shadow(lambda a: a.process_frame(frame))

    def _count_frame(self, t: float) -> None:
        self._last_s = t
        self.frames += 1
        self.camera_state = "ok"
        now = time.monotonic()
        if self._last_wall is not None and now > self._last_wall:
            self._fps = 0.9 * self._fps + 0.1 / (now - self._last_wall)
        self._last_wall = now

    def _save_reference(self, frame: Frame, image: Image, people: list[Box]) -> None:
        """Keep the camera's reference frame on disk, its people blurred like every image the
        agent writes (the boxes are in the detector's downscaled image, the reference full size)."""
        assert self.references is not None
        self._reference_due = False
        reference = blur_regions(frame.image, scaled(people, frame.image.shape[1] / image.shape[1]))
        try:
            path = self.references.save(self.camera.id, reference)
            logger.info("camera %s: reference frame taken (%s)", self.camera.id, path)
        except OSError as exc:  # the check goes on against the frame in memory
            logger.error("camera %s: %s", self.camera.id, exc)

    def _check_view(self, frame: Frame) -> list[Event]:
        assert self.monitor is not None
        change = self.monitor.check(frame.image, frame.timestamp_s)
        if self.monitor.needs_reference and self.references is not None:
            # Kept on disk once this frame's people are found, to blur them (after_detect).
            self._reference_due = True
            self.monitor.needs_reference = False
        if change is None:
            return []
        events: list[Event] = []
        if change.previous is ViewHealth.OK:
            logger.warning("camera %s: view %s; its stations report nothing", self.camera.id, change.health)
            events = self.view_lost(change.at_s)
        else:
            logger.warning("camera %s: view %s (was %s)", self.camera.id, change.health, change.previous)
        if self.on_health_change is not None:
            self.on_health_change(self, change)
        return events

    def _in_shadow(self, step: Callable[[CameraPipeline], list[Event]]) -> list[Event]:
        """Run ``step`` on the shadow pipeline; a failing candidate is switched off, production goes on."""
        if self.shadow_pipeline is None:
            return []
        try:
            return step(self.shadow_pipeline)
        except Exception as exc:  # whatever the candidate does, production events must keep flowing
            logger.exception("shadow model %s failed; shadow mode off", self.shadow_pipeline.model_version)
            self.shadow_error = f"{type(exc).__name__}: {exc}"
            self.shadow_pipeline.detector.close()
            self.shadow_pipeline = None
            return []

    def _activity(self, person: Detection) -> float:
        previous = self._poses.get(person.track_id) if person.track_id is not None else None
        if person.keypoints and previous:
            return keypoint_activity(previous, person.keypoints, person.box)
        return self.energy.energy(person.box)

    def camera_lost(self, outage: Outage) -> list[Event]:
        self.camera_state = "reconnecting"
        logger.warning("camera %s: %s", self.camera.id, outage.reason)
        last = outage.last_good_s if outage.last_good_s is not None else self._last_s
        return self.commit(self._close_all(last)) + self._in_shadow(lambda a: a.camera_lost(outage))

    def view_lost(self, at_s: float) -> list[Event]:
        """The view went wrong at ``at_s``: close every open segment there (an outage)."""
        return self.commit(self._close_all(at_s)) + self._in_shadow(lambda a: a.view_lost(at_s))

    def finish(self) -> list[Event]:
        """Close every open segment at the last good frame (end of file, agent stopping)."""
        return self.commit(self._close_all(self._last_s)) + self._in_shadow(lambda a: a.finish())

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
            camera_id=self.camera.id,
            site_id=self.config.site_id,
            gateway_id=self.config.gateway_id,
            config_version=self.config_version,
            shadow=self.shadow,
        )

    def commit(self, items: Sequence[StationEvent | Crossing]) -> list[Event]:
        """Station events and crossings to contract events, on disk before anything may publish them."""
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
            self.buffer.append(events)
            self.events_made += len(events)
        return events

    # -- status -------------------------------------------------------------------------
    def camera_status(self) -> dict[str, Any]:
        """This camera's entry in the heartbeat (contract: CameraStatus)."""
        out: dict[str, Any] = {
            "camera_id": self.camera.id,
            "camera_state": self.camera_state,
            "frames": self.frames,
            "fps": round(self._fps, 2),
            "last_frame_at": _iso(self._last_s),
            "detector_latency_ms": round(self._latency_ms, 2),
            "dropped_frames": self.dropped_frames,
            "config_version": self.config_version,
            "stations": sorted(self.stations),
            **self.detection_status(),
        }
        if self.monitor is not None:
            report = self.monitor.report()
            out["health"] = {
                "state": report["state"],
                "checks": report["checks"],
                "since": _iso(report.get("since_s")),  # type: ignore[arg-type]
                "checked_at": _iso(report.get("checked_s")),  # type: ignore[arg-type]
                "measures": report.get("measures"),
            }
        return out

    def detection_status(self) -> dict[str, Any]:
        """How often the detector sees this camera, and how old the detections it relies on are:
        an installer's sign of an overloaded gateway (``detector_overloaded``: frames deferred in
        the last 10 s and detections older than ``gating.recheck_s``)."""
        s = self.scheduler
        return {
            "gated": self.gated,
            "detect_fps": round(s.detect_fps, 2),
            "detections": s.detections,
            "frames_gated": s.frames_gated,
            "frames_deferred": s.frames_deferred,
            "detection_age_s": round(s.detection_age_s, 2),
            "detection_age_max_s": round(s.detection_age_max_s, 2),
            "detector_overloaded": s.overloaded,
        }

    def status_fields(self) -> dict[str, Any]:
        """The gateway-level fields a one-camera gateway has always reported."""
        fields: dict[str, Any] = {
            "model_version": self.model_version,
            "camera_state": self.camera_state,
            "fps": round(self._fps, 2),
            "detector_latency_ms": round(self._latency_ms, 2),
            "camera_id": self.camera.id,
            "config_version": self.config_version,
            "frames": self.frames,
        }
        if self.shadow_pipeline is not None:
            fields["shadow_model_version"] = self.shadow_pipeline.model_version
            fields["shadow_detector_latency_ms"] = round(self.shadow_pipeline.latency_ms, 2)
        if self.shadow_error is not None:
            fields["shadow_error"] = self.shadow_error
        return fields
