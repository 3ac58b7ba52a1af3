"""The agent's YAML configuration, parsed into pydantic models that reject unknown keys."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from datetime import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from edge_agent import EdgeError
from edge_agent.activity import Thresholds
from edge_agent.counting import Direction
from takt.contract.topics import TOPIC_ID_PATTERN
from takt.privacy import MIN_KEY_BYTES, PrivacyLevel, outgoing_worker

TopicId = Annotated[str, Field(pattern=TOPIC_ID_PATTERN)]
EntityId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")]
PointList = Annotated[list[tuple[float, float]], Field(min_length=2)]
if TYPE_CHECKING:
    from edge_agent.gating import GateSettings

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(EdgeError):
    """The configuration file cannot be used; the message lists every problem with its location."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraConfig(_Model):
    id: TopicId
    # A file path, an rtsp:// / http:// URL, or a V4L2 device number.
    source: str | int
    sample_fps: float = Field(default=5.0, gt=0, le=60)
    loop: bool = False
    # Files: when the first frame was taken. Default: when the agent opens the file.
    start_time: AwareDatetime | None = None
    # Files only: pace frames like a live camera (demos); otherwise as fast as possible.
    realtime: bool = False
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    # A gap between frames longer than this is an outage: open segments close at the last good frame.
    max_gap_s: float = Field(default=5.0, gt=0)
    process_width: int | None = Field(default=None, ge=64)


_C = TypeVar("_C", bound=CameraConfig)


class MotionConfig(_Model):
    algorithm: Literal["mog2", "knn"] = "mog2"
    # Per processed frame; small so a worker standing still stays foreground for minutes.
    learning_rate: float = Field(default=0.0005, ge=0, le=1)
    var_threshold: float = 25.0
    person_min_area: float = Field(default=800.0, ge=0)
    object_min_area: float = Field(default=60.0, ge=0)
    object_label: str = "product"
    warmup_frames: int = Field(default=1, ge=0)
    # Learn the background everywhere except under people, so still workers stay visible.
    freeze_people: bool = True


class TilingConfig(_Model):
    """Cut the frame into ``grid``×``grid`` overlapping tiles for the ONNX yolo backend.

    For small or crowded people (a wide 720p+ view, people under ~60 px): each tile is run at the
    model's input size and all boxes are merged by NMS. Costs grid² (+1 with ``full_frame``)
    inferences per frame; 1 = off.
    """

    grid: int = Field(default=1, ge=1, le=4)
    overlap: float = Field(default=0.2, ge=0, lt=0.5)
    # Also run the whole frame, so people larger than a tile are still found whole.
    full_frame: bool = True


class GatingConfig(_Model):
    """Motion-gated detection (edge_agent/gating.py; docs/edge-agent.md, "Motion-gated detection").

    Every frame is decoded and gets a cheap motion measure inside the camera's station zones (and
    a band around each count line); the detector runs on a frame when a zone changed since the
    frame it last saw, when its last detection is ``recheck_s`` old, or on the first frame. Other
    frames reuse the last detections. Under overload the detector takes at most
    ``max_detector_share`` of each frame interval (live cameras), cameras with the oldest
    detections first. Applies to detectors that keep no state between frames (ONNX models);
    motion (MOG2), replay and ultralytics (tracker) backends always see every frame. Defaults
    measured on the concourse clip (docs/benchmarks.md, "Motion-gated detection").
    """

    enabled: bool = True
    # Width of the grey copy the motion is measured on (320: a 1280 px view's 65 px zone is 16 px).
    motion_width: int = Field(default=320, ge=32)
    # Grey-level change (0-255, after a 3x3 blur) that counts a pixel as changed.
    pixel_threshold: int = Field(default=25, ge=1, le=255)
    # A zone with at least this share of its pixels changed has motion (0.01: a hand, not noise).
    min_changed_share: float = Field(default=0.01, gt=0, le=1)
    # The detector sees every camera at least this often (frame time), motion or not.
    recheck_s: float = Field(default=2.0, gt=0)
    # Half-width of the band around a count line that is watched for motion, processed-frame pixels.
    line_band_px: float = Field(default=24.0, gt=0)
    # Share of the frame interval (1 / the fastest camera's sample_fps) the detector thread may
    # spend per round on live cameras; beyond it the cameras with the oldest detections go first.
    max_detector_share: float = Field(default=0.8, gt=0, le=1)

    def settings(self) -> GateSettings:
        from edge_agent.gating import GateSettings  # OpenCV comes with it: only where frames are

        return GateSettings(
            motion_width=self.motion_width,
            pixel_threshold=self.pixel_threshold,
            min_changed_share=self.min_changed_share,
            recheck_s=self.recheck_s,
            line_band_px=self.line_band_px,
        )


class DetectorConfig(_Model):
    backend: Literal["motion", "yolo", "replay"] = "motion"
    model: str | None = Field(
        default=None,
        description="name@version in the models/ registry: required for yolo; for motion and replay "
        "it names a registered parameter or detections file, so their events carry a real version",
    )
    models_dir: Path = Path("models")
    runtime: Literal["onnxruntime", "ultralytics"] = "onnxruntime"
    replay_file: Path | None = None
    person_label: str = "person"
    product_labels: list[str] = Field(default_factory=lambda: ["product"])
    confidence: float | None = Field(default=None, ge=0, le=1)
    tiling: TilingConfig = TilingConfig()
    gating: GatingConfig = GatingConfig()
    motion: MotionConfig = MotionConfig()
    # A candidate model run on the same frames; its events are tagged shadow and
    # kept out of production metrics until it is promoted.
    shadow: DetectorConfig | None = None

    @model_validator(mode="after")
    def _backend_needs(self) -> DetectorConfig:
        if self.backend == "yolo" and not self.model:
            raise ValueError("the yolo backend needs `model: name@version` from the models registry")
        if self.backend == "replay" and self.replay_file is None and not self.model:
            raise ValueError("the replay backend needs `replay_file` or a registered `model`")
        if self.shadow is not None and self.shadow.shadow is not None:
            raise ValueError("a shadow detector cannot have a shadow of its own")
        return self

    def resolve_paths(self, base: Path) -> DetectorConfig:
        """Relative paths in the file are relative to the file, not to the working directory."""
        updates: dict[str, Any] = {}
        if not self.models_dir.is_absolute():
            updates["models_dir"] = base / self.models_dir
        if self.replay_file is not None and not self.replay_file.is_absolute():
            updates["replay_file"] = base / self.replay_file
        if self.shadow is not None:
            updates["shadow"] = self.shadow.resolve_paths(base)
        return self.model_copy(update=updates) if updates else self


class StationConfig(_Model):
    id: EntityId
    zone: Annotated[list[tuple[float, float]], Field(min_length=3)]
    normalized: bool = False
    anchor: Literal["center", "bottom"] = "center"
    absent_after_s: float = Field(default=5.0, ge=0)
    idle_after_s: float = Field(default=3.0, ge=0)
    working_after_s: float = Field(default=1.0, ge=0)
    activity_threshold: float = Field(default=0.02, ge=0, le=1)
    activity_window_s: float = Field(default=0.5, gt=0)

    def thresholds(self, segment_period_s: float) -> Thresholds:
        return Thresholds(
            absent_after_s=self.absent_after_s,
            idle_after_s=self.idle_after_s,
            working_after_s=self.working_after_s,
            activity_threshold=self.activity_threshold,
            activity_window_s=self.activity_window_s,
            segment_period_s=segment_period_s,
        )


class CountLineConfig(_Model):
    id: EntityId
    station_id: EntityId
    points: Annotated[list[tuple[float, float]], Field(min_length=2, max_length=2)]
    normalized: bool = False
    labels: list[str] = Field(default_factory=lambda: ["product"])
    direction: Direction = Direction.ANY
    dead_band_px: float = Field(default=4.0, ge=0)


class RosterConfig(_Model):
    station_id: EntityId
    worker_id: EntityId
    start: time
    end: time
    weekdays: list[int] = Field(default_factory=lambda: list(range(7)))


class BadgeConfig(_Model):
    enabled: bool = False
    dictionary: str = "DICT_4X4_50"
    markers: dict[int, EntityId] = Field(default_factory=dict)
    hold_s: float = Field(default=30.0, ge=0)
    every_n_frames: int = Field(default=5, ge=1)


class MqttConfig(_Model):
    url: str | None = Field(default=None, description="mqtt://user:pass@host:port; may be ${ENV_VAR}")
    url_env: str | None = Field(default=None, description="name of an environment variable holding the URL")
    ca_file: str | None = None
    batch_max_events: int = Field(default=500, ge=1, le=2000)
    ack_timeout_s: float = Field(default=30.0, gt=0)
    max_inflight_batches: int = Field(default=10, ge=1)
    replay_max_events_per_s: float = Field(default=5000.0, gt=0)
    heartbeat_s: float = Field(default=30.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    keepalive_s: int = Field(default=30, ge=5)

    @model_validator(mode="after")
    def _one_url(self) -> MqttConfig:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("set exactly one of `url` and `url_env`")
        return self

    def resolved_url(self) -> str:
        if self.url_env is not None:
            value = os.environ.get(self.url_env)
            if not value:
                raise ConfigError(f"mqtt.url_env: environment variable {self.url_env} is not set")
            return value
        assert self.url is not None

        def substitute(match: re.Match[str]) -> str:
            value = os.environ.get(match.group(1))
            if value is None:
                raise ConfigError(f"mqtt.url: environment variable {match.group(1)} is not set")
            return value

        return _ENV_REF.sub(substitute, self.url)


class PrivacyConfig(_Model):
    """The site's privacy level, applied here before an event is made (docs/privacy.md).

    ``pseudonymous`` needs ``key_file``: the site's secret key (at least 16 bytes; e.g.
    ``head -c 32 /dev/urandom > /etc/takt/pseudonym.key; chmod 600``), the same on every
    gateway of the site, never sent to the cloud."""

    level: PrivacyLevel = PrivacyLevel.NAMED
    key_file: Path | None = None

    @model_validator(mode="after")
    def _key(self) -> PrivacyConfig:
        if self.level is PrivacyLevel.PSEUDONYMOUS and self.key_file is None:
            raise ValueError("the pseudonymous level needs `key_file` (the site's pseudonym key)")
        return self

    def outgoing(self, site_id: str) -> Callable[[str], str]:
        """The function turning a roster or badge id into the id an event carries."""
        key = None
        if self.level is PrivacyLevel.PSEUDONYMOUS:
            assert self.key_file is not None
            try:
                key = self.key_file.read_bytes()
            except OSError as exc:
                raise ConfigError(f"privacy.key_file: cannot read: {exc}") from None
            if len(key) < MIN_KEY_BYTES:
                raise ConfigError(f"privacy.key_file: the key needs at least {MIN_KEY_BYTES} bytes")
        level = self.level
        return lambda worker: outgoing_worker(level, worker, key=key, site_id=site_id)


class BufferConfig(_Model):
    path: Path = Path("/var/lib/takt-edge/buffer.sqlite")
    max_mb: float = Field(default=512.0, gt=0)
    max_age_h: float | None = Field(default=24.0 * 14, gt=0)
    # FULL: a commit survives power loss; NORMAL in WAL mode may lose the last commits on power loss.
    synchronous: Literal["FULL", "NORMAL"] = "FULL"


class HealthConfig(_Model):
    """Camera health: the view checked against a reference frame every ``check_every_s``.

    Thresholds are for the cheap measures in :mod:`edge_agent.health`; the defaults suit a fixed
    camera over a work area. ``reference_dir`` holds one PNG per camera (default: beside the buffer).
    """

    # auto: live sources (streams, devices) only; a file is a recording, often a noise-free synthetic one.
    enabled: bool | Literal["auto"] = "auto"
    check_every_s: float = Field(default=10.0, gt=0)
    reference_dir: Path | None = None
    # Shift of the view against the reference (phase correlation), in pixels of a 320 px wide copy.
    max_shift_px: float = Field(default=8.0, gt=0)
    # Sharpness (variance of the Laplacian) below this share of the reference's: out of focus.
    min_sharpness_ratio: float = Field(default=0.35, gt=0, le=1)
    # Edge density below this share of the reference's, or a nearly uniform image: covered.
    min_edge_ratio: float = Field(default=0.25, gt=0, le=1)
    min_contrast: float = Field(default=6.0, ge=0)
    # No pixel changing for this long (mean absolute difference below frozen_diff): frozen.
    frozen_after_s: float = Field(default=30.0, gt=0)
    frozen_diff: float = Field(default=0.05, ge=0)
    # A check that fails this many times in a row marks the view wrong; one good check clears it.
    bad_checks: int = Field(default=2, ge=1)


class CameraEntry(CameraConfig):
    """One camera of a gateway that serves several (``cameras:``), with its own stations."""

    stations: list[StationConfig] = Field(min_length=1)
    count_lines: list[CountLineConfig] = Field(default_factory=list)

    def camera_only(self) -> CameraConfig:
        return CameraConfig.model_validate(self.model_dump(exclude={"stations", "count_lines"}))


class EdgeConfig(_Model):
    """A gateway's configuration.

    Either one camera (``camera``, ``stations``, ``count_lines`` at the top level, the original
    form) or several (``cameras``, each with its own ``stations`` and ``count_lines``).
    :meth:`views` gives one single-camera config per camera either way.
    """

    site_id: TopicId
    gateway_id: TopicId
    timezone: str = "UTC"
    # Required in the one-camera form; absent (None, []) with ``cameras`` (see _camera_form).
    camera: CameraConfig | None
    cameras: list[CameraEntry] = Field(default_factory=list)
    detector: DetectorConfig = DetectorConfig()
    stations: list[StationConfig]
    count_lines: list[CountLineConfig] = Field(default_factory=list)
    roster: list[RosterConfig] = Field(default_factory=list)
    badges: BadgeConfig = BadgeConfig()
    mqtt: MqttConfig
    buffer: BufferConfig = BufferConfig()
    health: HealthConfig = HealthConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    segment_period_s: float = Field(default=10.0, gt=0, le=60)

    @field_validator("timezone")
    @classmethod
    def _known_tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _camera_form(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("cameras"):
            data = {"camera": None, "stations": [], **data}
        return data

    @model_validator(mode="after")
    def _references(self) -> EdgeConfig:
        if self.cameras:
            if self.camera is not None or self.stations or self.count_lines:
                raise ValueError(
                    "with `cameras`, stations and count_lines go under each camera "
                    "(no top-level `camera`, `stations` or `count_lines`)"
                )
            camera_ids = [c.id for c in self.cameras]
            if len(set(camera_ids)) != len(camera_ids):
                raise ValueError("camera ids must be unique")
            groups = [(c.stations, c.count_lines) for c in self.cameras]
        else:
            if self.camera is None:
                raise ValueError("set `camera` (with `stations`) or a `cameras` list")
            if not self.stations:
                raise ValueError("`stations` needs at least one station")
            groups = [(self.stations, self.count_lines)]
        ids = [s.id for stations, _ in groups for s in stations]
        if len(set(ids)) != len(ids):
            raise ValueError("station ids must be unique (across all cameras)")
        for stations, lines in groups:
            own = {s.id for s in stations}
            for line in lines:
                if line.station_id not in own:
                    raise ValueError(f"count line {line.id!r} names unknown station {line.station_id!r}")
        for entry in self.roster:
            if entry.station_id not in ids:
                raise ValueError(f"roster entry for {entry.worker_id!r} names unknown station")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def single_camera(self) -> CameraConfig:
        """The camera of a one-camera config (a view); an error for a ``cameras:`` config."""
        if self.camera is None:
            raise ConfigError(f"this config has {len(self.cameras)} cameras; take one of views()")
        return self.camera

    def views(self) -> list[EdgeConfig]:
        """One single-camera config per camera, in the order of the file (the config itself for one)."""
        if not self.cameras:
            return [self]
        return [
            self.model_copy(
                update={
                    "camera": entry.camera_only(),
                    "stations": entry.stations,
                    "count_lines": entry.count_lines,
                    "cameras": [],
                }
            )
            for entry in self.cameras
        ]

    def config_version(self) -> str:
        """Short hash of what changes how frames become events (zones, lines, thresholds, detector).

        Per camera: each camera's events carry the version of its own view.
        """
        if self.cameras:
            joined = ",".join(v.config_version() for v in self.views())
            return hashlib.sha256(joined.encode()).hexdigest()[:12]
        relevant: dict[str, Any] = {
            "stations": [s.model_dump(mode="json") for s in self.stations],
            "count_lines": [c.model_dump(mode="json") for c in self.count_lines],
            "segment_period_s": self.segment_period_s,
            "sample_fps": self.single_camera.sample_fps,
            # A shadow candidate does not change how production events are made.
            "detector": self.detector.model_dump(
                mode="json", exclude={"models_dir", "replay_file", "shadow"}
            ),
        }
        digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()
        return digest[:12]


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: {error.error_count()} problem(s)"]
    for item in error.errors(include_url=False):
        loc = ".".join(str(p) for p in item["loc"]) or "(top level)"
        lines.append(f"  {loc}: {item['msg']}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "config") -> EdgeConfig:
    try:
        return EdgeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(path: Path) -> EdgeConfig:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    config = parse_config(data, str(path))
    # Relative paths in the file are relative to the file, not to the working directory.
    base = path.resolve().parent
    updates: dict[str, Any] = {}
    if not config.buffer.path.is_absolute():
        updates["buffer"] = config.buffer.model_copy(update={"path": base / config.buffer.path})
    detector = config.detector.resolve_paths(base)
    if detector is not config.detector:
        updates["detector"] = detector
    if config.health.reference_dir is not None and not config.health.reference_dir.is_absolute():
        updates["health"] = config.health.model_copy(
            update={"reference_dir": base / config.health.reference_dir}
        )
    if config.camera is not None:
        updates["camera"] = _resolve_source(config.camera, base)
    if config.cameras:
        updates["cameras"] = [_resolve_source(c, base) for c in config.cameras]
    key_file = config.privacy.key_file
    if key_file is not None and not key_file.is_absolute():
        updates["privacy"] = config.privacy.model_copy(update={"key_file": base / key_file})
    return config.model_copy(update=updates) if updates else config


def _resolve_source(camera: _C, base: Path) -> _C:
    source = camera.source
    if isinstance(source, str) and "://" not in source and not Path(source).is_absolute():
        return camera.model_copy(update={"source": str(base / source)})
    return camera
