"""``takt edge``: run the agent, check an installation, draw a snapshot, make demo footage."""

from __future__ import annotations

import logging
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from edge_agent import EdgeError
from edge_agent.config import EdgeConfig, load_config

logger = logging.getLogger(__name__)
CONFIG = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The gateway's YAML configuration.",
)


def _load(path: Path) -> EdgeConfig:
    try:
        return load_config(path)
    except EdgeError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


@click.group()
def edge() -> None:
    """The edge agent on a camera gateway."""


@edge.command()
@CONFIG
@click.option("--exit-at-end", is_flag=True, help="Files: exit once the video ended and the buffer drained.")
@click.option("--drain-timeout", default=60.0, show_default=True, help="Seconds to wait for acks at the end.")
@click.option("--max-frames", type=int, default=None, help="Stop after N frames per camera (testing).")
@click.option("--offline", is_flag=True, help="No broker: write events to --events-out instead.")
@click.option(
    "--events-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --offline: every event as one JSON line (the contract's Event form).",
)
@click.option("--log-level", default="INFO", show_default=True)
def run(
    config_path: Path,
    exit_at_end: bool,
    drain_timeout: float,
    max_frames: int | None,
    offline: bool,
    events_out: Path | None,
    log_level: str,
) -> None:
    """Run the agent until stopped (SIGTERM/SIGINT), or until a file source ends.

    With --offline the camera source (a file, looped or not) runs through the whole agent without
    a broker and each event goes to --events-out as it is made; --max-frames bounds a looped file.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if offline != (events_out is not None):
        click.echo("--offline and --events-out go together", err=True)
        sys.exit(2)
    config = _load(config_path)
    from edge_agent.agent import Agent

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if events_out is not None:
        _run_offline(config, events_out, stop, max_frames)
        return
    try:
        agent = Agent(config)
        agent.run(stop, exit_at_end=exit_at_end, drain_timeout_s=drain_timeout, max_frames=max_frames)
    except EdgeError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    backlog = agent.buffer.stats().backlog
    if exit_at_end and backlog:
        logger.error("%d events still unacknowledged after %.0f s", backlog, drain_timeout)
        sys.exit(3)


def _run_offline(config: EdgeConfig, events_out: Path, stop: threading.Event, max_frames: int | None) -> None:
    from edge_agent.offline import run_offline

    with events_out.open("wb") as out:
        try:
            agent = run_offline(config, out, stop, max_frames)
        except EdgeError as exc:
            logger.error("%s", exc)
            sys.exit(1)
    click.echo(f"{agent.frames} frames, {agent.events_made} events -> {events_out}")


@edge.command("eval")
@CONFIG
@click.option(
    "--truth",
    "truth_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ground truth (takt-truth/1 JSON; docs/edge-agent.md, Evaluation).",
)
@click.option(
    "--json-out",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON summary here ('-': to stdout, the table then to stderr).",
)
@click.option(
    "--events-out",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the run's events (JSON lines) here.",
)
@click.option("--max-frames", type=int, default=None, help="Stop after this many frames.")
@click.option(
    "--min-state-agreement",
    type=click.FloatRange(0, 1),
    default=None,
    help="Exit 1 if any station's share of scored time in the right state is below this (0-1).",
)
@click.option(
    "--max-count-error",
    type=click.FloatRange(0),
    default=None,
    help="Exit 1 if any station's |counted - truth| / truth is above this.",
)
@click.option("--log-level", default="WARNING", show_default=True)
def eval_(
    config_path: Path,
    truth_path: Path,
    json_out: Path | None,
    events_out: Path | None,
    max_frames: int | None,
    min_state_agreement: float | None,
    max_count_error: float | None,
    log_level: str,
) -> None:
    """Score the agent on a recorded clip against ground truth, per station and model.

    Runs the config's camera source (a file, once, as fast as it decodes) through the whole
    agent offline, as `run --offline` does, and compares its states and counts with the
    truth: the share of scored time in each state on both sides, the share in agreement,
    and count accuracy. A shadow candidate in the config is scored beside production. Motion
    gating (detector.gating) runs as configured, decided on frame time as live: run the same
    config with `gating: {enabled: false}` to see what it changes. The thresholds apply to the
    production model; exit 1 below them, 2 on bad input.
    """
    import json

    from edge_agent.evaluation import TruthError, failures, format_table, parse_truth, summary
    from edge_agent.offline import evaluate

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = _load(config_path)
    try:
        truth = parse_truth(json.loads(truth_path.read_text()), str(truth_path))
    except (ValueError, TruthError) as exc:  # JSONDecodeError is a ValueError
        click.echo(f"{truth_path}: {exc}" if not isinstance(exc, TruthError) else str(exc), err=True)
        sys.exit(2)
    from edge_agent.config import ConfigError

    with tempfile.TemporaryDirectory() as tmp:
        try:
            scores, agent = evaluate(
                config, truth, events_out or Path(tmp) / "events.jsonl", max_frames=max_frames
            )
        except ConfigError as exc:
            click.echo(str(exc), err=True)
            sys.exit(2)
        except EdgeError as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
    # With --json-out - the JSON alone goes to stdout (for jq and scripts), the table to stderr.
    to_stderr = json_out is not None and str(json_out) == "-"
    click.echo(format_table(scores), err=to_stderr)
    click.echo(
        f"{agent.frames} frames; truth states: W working, I idle, A absent, P present (W or I)", err=to_stderr
    )
    document = summary(scores)
    document["frames"] = agent.frames
    problems = failures(scores, min_state_agreement=min_state_agreement, max_count_error=max_count_error)
    document["failures"] = problems
    text = json.dumps(document, indent=2)
    if json_out is not None and str(json_out) == "-":
        click.echo(text)
    elif json_out is not None:
        json_out.write_text(text + "\n")
    for problem in problems:
        click.echo(f"FAIL {problem}", err=True)
    if problems:
        sys.exit(1)


def _check_rows(config: EdgeConfig) -> list[tuple[str, bool, str]]:
    from edge_agent.agent import build_detector, build_detector_for
    from edge_agent.publisher import BrokerAuthError, Publisher
    from edge_agent.sources import grab_one
    from takt.mqtt import MqttEndpoint

    rows: list[tuple[str, bool, str]] = [("config", True, f"config_version {config.config_version()}")]

    def step(name: str, action: Callable[[], str]) -> None:
        try:
            rows.append((name, True, action()))
        except Exception as exc:  # every failure becomes a row in the table
            rows.append((name, False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))

    def camera(view: EdgeConfig) -> Callable[[], str]:
        def grab() -> str:
            image = grab_one(view.single_camera)
            return f"{image.shape[1]}x{image.shape[0]} frame from {view.single_camera.source}"

        return grab

    def model() -> str:
        detector = build_detector(config)
        detector.close()
        return f"{detector.model_version} loaded" + (" (sha256 verified)" if config.detector.model else "")

    def broker() -> str:
        from edge_agent.buffer import EventBuffer

        endpoint = MqttEndpoint.from_url(config.mqtt.resolved_url(), config.mqtt.ca_file)
        with tempfile.TemporaryDirectory() as tmp:
            buf = EventBuffer(Path(tmp) / "check.sqlite")
            pub = Publisher(
                buf, endpoint, config.site_id, config.gateway_id, client_id=f"takt-check-{config.gateway_id}"
            )
            pub.start()
            deadline = time.monotonic() + config.mqtt.connect_timeout_s
            while time.monotonic() < deadline and not pub.connected.is_set() and pub.fatal is None:
                time.sleep(0.05)
            ok = pub.connected.is_set()
            pub.stop()
            buf.close()
        if isinstance(pub.fatal, BrokerAuthError):
            raise pub.fatal
        if not ok:
            raise EdgeError(
                f"no connection to {endpoint.host}:{endpoint.port} within {config.mqtt.connect_timeout_s} s"
            )
        return f"connected to {endpoint.host}:{endpoint.port} as {endpoint.username}"

    def buffer() -> str:
        path = config.buffer.path
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / ".takt-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
        return f"{path.parent} is writable"

    def shadow_model() -> str:
        assert config.detector.shadow is not None
        detector = build_detector_for(config.detector.shadow)
        detector.close()
        return f"{detector.model_version} loaded as shadow candidate"

    views = config.views()
    for view in views:
        step("camera" if len(views) == 1 else f"camera {view.single_camera.id}", camera(view))
    step("model", model)
    if config.detector.shadow is not None:
        step("shadow model", shadow_model)
    step("broker", broker)
    step("buffer", buffer)
    return rows


@edge.command()
@CONFIG
def check(config_path: Path) -> None:
    """Validate config, grab a frame, load and verify the model, connect to the broker."""
    logging.basicConfig(level=logging.WARNING)
    config = _load(config_path)
    rows = _check_rows(config)
    width = max(len(r[0]) for r in rows)
    for name, ok, detail in rows:
        click.echo(f"{name.ljust(width)}  {'PASS' if ok else 'FAIL'}  {detail}")
    if not all(ok for _, ok, _ in rows):
        sys.exit(1)


@edge.command()
@CONFIG
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--frames", default=15, show_default=True, help="Frames to run the detector over first.")
@click.option(
    "--camera", "camera_id", default=None, help="Which camera of a `cameras:` config (default: the first)."
)
@click.option(
    "--set-reference",
    is_flag=True,
    help="Also keep the camera's current frame as the reference its view is checked against (camera health).",
)
@click.option(
    "--no-blur",
    is_flag=True,
    help="Leave detected people recognisable (for an installer on site; by default they are blurred).",
)
def snapshot(
    config_path: Path, out: Path, frames: int, camera_id: str | None, set_reference: bool, no_blur: bool
) -> None:
    """A frame with zones, count lines and current detections drawn, for installers.

    Detected people are blurred unless --no-blur: a snapshot is a file that gets copied around.
    With --set-reference the frame (people blurred likewise) also becomes the camera's health
    reference (after the camera was moved on purpose, or the scene was rearranged); a running
    agent reads it at its next start.
    """
    import cv2

    from edge_agent.agent import Agent
    from edge_agent.buffer import EventBuffer
    from edge_agent.draw import draw_overlay
    from edge_agent.sources import Frame, VideoSource

    config = _load(config_path)
    views = {v.single_camera.id: v for v in config.views()}
    if camera_id is not None and camera_id not in views:
        click.echo(f"no camera {camera_id!r} in {config_path} (cameras: {', '.join(views)})", err=True)
        sys.exit(2)
    config = views[camera_id] if camera_id is not None else next(iter(views.values()))
    stop = threading.Event()
    last: Frame | None = None
    with tempfile.TemporaryDirectory() as tmp:
        # A throwaway buffer: a snapshot must not queue events for the cloud.
        agent = Agent(config, buffer=EventBuffer(Path(tmp) / "snap.sqlite"))
        try:
            for item in VideoSource(config.single_camera).frames(stop):
                if isinstance(item, Frame):
                    last = item
                    agent.process_frame(item)
                    if agent.frames >= frames:
                        break
        except EdgeError as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
        if last is None or agent.geometry is None:
            click.echo("no frame from the camera", err=True)
            sys.exit(1)
        image = agent.prepare(last.image)
        people = [d.box for d in agent.last_detections if d.label == config.detector.person_label]
        reference = last.image
        if not no_blur:
            from edge_agent.privacy import blur_regions, scaled

            # The boxes are in the detector's (downscaled) image; the reference keeps full size.
            reference = blur_regions(last.image, scaled(people, last.image.shape[1] / image.shape[1]))
            image = blur_regions(image, people)
        image = draw_overlay(image, agent.geometry, agent.last_detections)
    if not cv2.imwrite(str(out), image):
        click.echo(f"cannot write {out}", err=True)
        sys.exit(1)
    blurred = "not blurred" if no_blur else "blurred"
    click.echo(f"wrote {out} ({len(agent.last_detections)} detections; {len(people)} people {blurred})")
    if set_reference:
        from edge_agent.agent import reference_store

        path = reference_store(config).save(config.single_camera.id, reference)
        click.echo(f"reference frame for camera {config.single_camera.id} -> {path}")


@edge.command("make-demo-footage")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=7, show_default=True)
@click.option("--duration", default=90.0, show_default=True, help="Seconds of video.")
@click.option(
    "--cycle-s",
    type=(float, float),
    default=None,
    help="Seconds per unit (min max, within 30-120): a realistic shift instead of the dense test scene.",
)
@click.option("--mqtt-url", default="${TAKT_MQTT_URL}", show_default=True, help="Written into edge.yaml.")
def make_demo_footage(
    out_dir: Path, seed: int, duration: float, cycle_s: tuple[float, float] | None, mqtt_url: str
) -> None:
    """Render a synthetic factory clip, its ground truth and a matching edge.yaml."""
    from edge_agent.synthetic import demo_config, render

    video, truth = render(out_dir, seed=seed, duration_s=duration, cycle_s=cycle_s)
    config: dict[str, Any] = demo_config(
        video, truth, buffer_path=out_dir / "buffer.sqlite", mqtt_url=mqtt_url
    )
    (out_dir / "edge.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    click.echo(f"wrote {video}, {truth} and {out_dir / 'edge.yaml'}")
