"""The composition root: builds cameras' pipelines, detectors, buffer and publisher from a config.

What happens to a frame is :mod:`edge_agent.pipeline`'s business; how frames, the detector and
the publisher are driven is :mod:`edge_agent.runner`'s. :class:`Agent` wires them together and,
for the one-camera form, offers the pipeline's per-frame calls directly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import yaml
from pydantic import ValidationError

from edge_agent.activity import StationEvent
from edge_agent.buffer import EventBuffer
from edge_agent.config import ConfigError, DetectorConfig, EdgeConfig, MotionConfig
from edge_agent.counting import Crossing
from edge_agent.detect.base import Detection, Detector, Image
from edge_agent.detect.tracker import CentroidTracker
from edge_agent.health import HealthChange, ReferenceStore, ViewMonitor
from edge_agent.identity import IdentityResolver, RosterEntry
from edge_agent.pipeline import CameraPipeline, Geometry, build_geometry
from edge_agent.publisher import PublisherSettings
from edge_agent.sources import Frame, Outage, is_file_source
from takt.contract import Event

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


def reference_store(config: EdgeConfig) -> ReferenceStore:
    """Where the cameras' reference frames live: ``health.reference_dir``, else beside the buffer."""
    return ReferenceStore(config.health.reference_dir or config.buffer.path.parent / "reference")


def health_enabled(config: EdgeConfig, view: EdgeConfig) -> bool:
    """``health.enabled``: true, false, or auto (live sources only: a recording is not a camera)."""
    setting = config.health.enabled
    if setting == "auto":
        return not is_file_source(view.single_camera.source)
    return setting


def _shared(make: Callable[[], Detector], count: int) -> list[Detector]:
    """``count`` detectors: one instance for all when the backend keeps no per-camera state
    (``shareable``: ONNX models, which can then batch across cameras), else one each."""
    first = make()
    if getattr(first, "shareable", False):
        return [first] * count
    return [first] + [make() for _ in range(count - 1)]


class Agent:
    """A gateway: one pipeline per camera, one buffer, one identity resolver (and, run, one publisher)."""

    def __init__(
        self,
        config: EdgeConfig,
        *,
        detector: Detector | None = None,
        buffer: EventBuffer | None = None,
        shadow_detector: Detector | None = None,
        identity: IdentityResolver | None = None,
    ) -> None:
        self.config = config
        self.views = config.views()
        self.config_version = config.config_version()
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
        self.references = reference_store(config)
        self.health_listeners: list[Callable[[CameraPipeline, HealthChange], None]] = []
        n = len(self.views)
        detectors = [detector] * n if detector is not None else _shared(lambda: build_detector(config), n)
        candidate = config.detector.shadow
        shadows: list[Detector | None] = [None] * n
        if candidate is not None:
            if shadow_detector is not None:
                shadows = [shadow_detector] * n
            else:
                shadows = list(_shared(lambda: build_detector_for(candidate), n))
        aruco: Any = None
        if config.badges.enabled:
            dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, config.badges.dictionary))
            aruco = cv2.aruco.ArucoDetector(dictionary, cv2.aruco.DetectorParameters())
        self.pipelines: list[CameraPipeline] = []
        for view, det, shadow_det in zip(self.views, detectors, shadows, strict=True):
            shadow_pipeline = None
            if shadow_det is not None and candidate is not None:
                shadow_pipeline = CameraPipeline(
                    view.model_copy(update={"detector": candidate}),
                    shadow_det,
                    self.buffer,
                    self.identity,
                    shadow=True,
                )
                logger.info("shadow mode: %s beside %s", shadow_det.model_version, det.model_version)
            monitor = None
            if health_enabled(config, view):
                monitor = ViewMonitor(config.health, self.references.load(view.single_camera.id))
            self.pipelines.append(
                CameraPipeline(
                    view,
                    det,
                    self.buffer,
                    self.identity,
                    shadow_pipeline=shadow_pipeline,
                    aruco=aruco,
                    monitor=monitor,
                    references=self.references,
                    on_health_change=self._health_changed,
                )
            )

    def _health_changed(self, pipeline: CameraPipeline, change: HealthChange) -> None:
        for listener in self.health_listeners:
            listener(pipeline, change)

    # -- the one-camera form: the first (only) camera's pipeline ----------------------------
    @property
    def pipeline(self) -> CameraPipeline:
        return self.pipelines[0]

    @property
    def detector(self) -> Detector:
        return self.pipeline.detector

    @property
    def model_version(self) -> str:
        return self.pipeline.model_version

    @property
    def tracker(self) -> CentroidTracker | None:
        return self.pipeline.tracker

    @property
    def shadow_agent(self) -> CameraPipeline | None:
        return self.pipeline.shadow_pipeline

    @property
    def geometry(self) -> Geometry | None:
        return self.pipeline.geometry

    @property
    def last_detections(self) -> list[Detection]:
        return self.pipeline.last_detections

    @property
    def camera_state(self) -> str:
        states = [p.camera_state for p in self.pipelines]
        return next((s for s in states if s != "ok"), "ok")

    @camera_state.setter
    def camera_state(self, value: str) -> None:
        for p in self.pipelines:
            p.camera_state = value

    @property
    def frames(self) -> int:
        return sum(p.frames for p in self.pipelines)

    @property
    def events_made(self) -> int:
        return sum(p.events_made for p in self.pipelines)

    def prepare(self, image: Image) -> Image:
        return self.pipeline.prepare(image)

    def process_frame(self, frame: Frame) -> list[Event]:
        return self.pipeline.process_frame(frame)

    def camera_lost(self, outage: Outage) -> list[Event]:
        return self.pipeline.camera_lost(outage)

    def commit(self, items: Sequence[StationEvent | Crossing]) -> list[Event]:
        return self.pipeline.commit(items)

    def finish(self) -> list[Event]:
        """Close every camera's open segments at its last good frame."""
        return [e for p in self.pipelines for e in p.finish()]

    # -- status -------------------------------------------------------------------------
    def status_fields(self) -> dict[str, Any]:
        """Gateway-level fields (one camera: as they always were) plus ``cameras``, one entry each."""
        if len(self.pipelines) == 1:
            fields = self.pipeline.status_fields()
        else:
            fields = {
                "model_version": self.model_version,
                "camera_state": self.camera_state,
                "fps": round(sum(p.fps for p in self.pipelines), 2),
                "detector_latency_ms": round(max(p.latency_ms for p in self.pipelines), 2),
                "config_version": self.config_version,
                "frames": self.frames,
            }
            shadowed = [p for p in self.pipelines if p.shadow_pipeline is not None]
            if shadowed:
                shadow = shadowed[0].shadow_pipeline
                assert shadow is not None
                fields["shadow_model_version"] = shadow.model_version
                fields["shadow_detector_latency_ms"] = round(shadow.latency_ms, 2)
            errors = [p.shadow_error for p in self.pipelines if p.shadow_error is not None]
            if errors:
                fields["shadow_error"] = errors[0]
        fields["cameras"] = [p.camera_status() for p in self.pipelines]
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
        """Run every camera until ``stop`` (or, for files, their end); see :class:`GatewayRunner`."""
        from edge_agent.runner import GatewayRunner

        GatewayRunner(self).run(
            stop,
            publish=publish,
            exit_at_end=exit_at_end,
            drain_timeout_s=drain_timeout_s,
            max_frames=max_frames,
        )

    def close(self) -> None:
        closed: set[int] = set()
        for p in self.pipelines:
            for det in (p.detector, p.shadow_pipeline.detector if p.shadow_pipeline else None):
                if det is not None and id(det) not in closed:
                    closed.add(id(det))
                    det.close()


__all__ = ["Agent", "Geometry", "build_detector", "build_detector_for", "build_geometry"]
