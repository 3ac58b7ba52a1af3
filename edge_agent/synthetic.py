"""Synthetic factory footage with a ground-truth timeline, for demos and accuracy tests.

Two workstations seen from above: workers arrive, work (moving), idle (perfectly
still), leave; products ride a two-lane conveyor across a count line, sometimes
side by side. Deterministic for a given seed.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.detect.base import Image

WIDTH, HEIGHT, FPS = 320, 240, 10.0
# A fixed start for tests that need a reproducible calendar date; render() defaults to recent_start().
START = datetime(2026, 11, 23, 8, 0, 30, tzinfo=UTC)  # mid-minute: segments must be cut at :01:00 etc.
ZONES = {
    "st-1": [(20, 30), (140, 30), (140, 150), (20, 150)],
    "st-2": [(180, 30), (300, 30), (300, 150), (180, 150)],
}
LINE = [(160, 184), (160, 236)]
LANES_Y = (197, 223)
PRODUCT = 12
SPEED = 40.0  # px/s
BODY_W, BODY_H = 26, 46


@dataclass(frozen=True, slots=True)
class Phase:
    kind: str  # absent | arrive | working | idle | leave
    start_s: float
    end_s: float


class _Phases:
    """Phases laid end to end from 0 s, each clipped at ``duration``."""

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.t = 0.0
        self.phases: list[Phase] = []

    def add(self, kind: str, length: float) -> None:
        end = min(self.duration, self.t + length)
        if end > self.t:
            self.phases.append(Phase(kind, self.t, end))
        self.t = end


def _schedule(rng: random.Random, duration: float, first_arrival: float) -> list[Phase]:
    laid = _Phases(duration)

    laid.add("absent", first_arrival)
    laid.add("arrive", 1.5)
    while laid.t < duration - 35:
        laid.add("working", rng.uniform(14, 22))
        laid.add("idle", rng.uniform(10, 16))
    laid.add("working", rng.uniform(8, 12))
    laid.add("leave", 1.5)
    laid.add("absent", duration - laid.t)
    return laid.phases


def _shift_schedule(
    rng: random.Random, duration: float, first_arrival: float, cycle_s: tuple[float, float], away_at: float
) -> tuple[list[Phase], list[float]]:
    """A realistic stretch of a shift: runs of work cycles (a unit at the end of each, 30-120 s),
    short idle pauses, and one short absence starting near ``away_at``. Returns the phases and the
    times units are finished."""
    laid = _Phases(duration)
    units: list[float] = []
    away_done = False

    laid.add("absent", first_arrival)
    laid.add("arrive", 1.5)
    while laid.t < duration - 30:
        if not away_done and laid.t >= away_at:
            away_done = True
            laid.add("leave", 1.5)
            laid.add("absent", rng.uniform(45, 100))
            laid.add("arrive", 1.5)
            continue
        for _ in range(rng.randint(2, 5)):
            cycle = min(120.0, max(30.0, rng.uniform(*cycle_s)))
            if laid.t + cycle > duration - 10:
                break
            laid.add("working", cycle)
            units.append(laid.t)
        laid.add("idle", rng.uniform(20, 90))
    laid.add("working", max(0.0, duration - 3 - laid.t))
    laid.add("leave", 1.5)
    laid.add("absent", duration - laid.t)
    return laid.phases, units


def _person_center(phase: Phase, t: float, home: tuple[float, float]) -> tuple[float, float, float]:
    """Centre x, y and arm offset of the worker at time t."""
    hx, hy = home
    outside = -BODY_H
    if phase.kind == "arrive":
        f = (t - phase.start_s) / (phase.end_s - phase.start_s)
        return hx, outside + (hy - outside) * f, 0.0
    if phase.kind == "leave":
        f = (t - phase.start_s) / (phase.end_s - phase.start_s)
        return hx, hy + (outside - hy) * f, 0.0
    if phase.kind == "working":
        return hx + 3 * math.sin(2 * math.pi * 1.3 * t), hy, 9 * math.sin(2 * math.pi * 2.1 * t)
    if phase.kind == "idle":
        return hx, hy, 0.0
    return -1000.0, -1000.0, 0.0


def _in_zone(zone: list[tuple[int, int]], x: float, y: float) -> bool:
    xs, ys = [p[0] for p in zone], [p[1] for p in zone]
    return min(xs) <= x <= max(xs) and min(ys) <= y <= max(ys)


def _background(rng: np.random.Generator) -> Image:
    floor = rng.normal(70, 6, (HEIGHT, WIDTH)).clip(0, 255).astype(np.uint8)
    img = np.asarray(cv2.cvtColor(cv2.GaussianBlur(floor, (7, 7), 0), cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    for zone in ZONES.values():
        (x1, y1), (x2, y2) = zone[0], zone[2]
        cv2.rectangle(img, (x1 + 10, y1 + 70), (x2 - 10, y2 - 10), (105, 110, 115), -1)  # bench
    cv2.rectangle(img, (0, 184), (WIDTH, 236), (85, 85, 85), -1)  # conveyor
    return img


def recent_start(duration_s: float, now: datetime | None = None) -> datetime:
    """Half a minute past the minute, such that a clip of ``duration_s`` ended a minute ago.

    Footage stamped from here passes the collector's plausibility window
    (events must be at most days old) on whatever date it is rendered.
    """
    end = (now or datetime.now(UTC)) - timedelta(minutes=1, seconds=duration_s + 30)
    return end.replace(second=30, microsecond=0)


def render(
    out_dir: Path,
    *,
    seed: int = 7,
    duration_s: float = 90.0,
    name: str = "demo",
    start_time: datetime | None = None,
    cycle_s: tuple[float, float] | None = None,
) -> tuple[Path, Path]:
    """Write ``<name>.avi`` and ``<name>.ground_truth.json``; returns both paths.

    The ground truth's ``start_time`` (what ``demo_config`` stamps frames
    from) is ``start_time``, by default :func:`recent_start`.

    By default the scene is dense (short work/idle spells, a product every few
    seconds across one count line): what the accuracy tests need. With
    ``cycle_s`` (the range of seconds per unit, within 30-120 s) it is a
    realistic stretch of a shift instead: each station's worker finishes one
    unit per cycle onto its own lane, counted by its own line, with short idle
    pauses and one short absence each (the demo's lines).
    """
    start = (start_time or recent_start(duration_s)).astimezone(UTC)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)  # noqa: S311 - a reproducible scene, not secrets
    noise = np.random.default_rng(seed)
    background = _background(noise)
    homes = {"st-1": (80.0, 75.0), "st-2": (240.0, 75.0)}
    products: list[tuple[float, int]] = []
    if cycle_s is None:
        schedules = {
            "st-1": _schedule(rng, duration_s, rng.uniform(5, 9)),
            "st-2": _schedule(rng, duration_s, rng.uniform(14, 20)),
        }
        t = rng.uniform(1, 3)
        while t < duration_s:
            if rng.random() < 0.35:  # side by side, crossing together
                products += [(t, 0), (t, 1)]
            else:
                products.append((t, rng.randrange(2)))
            t += rng.uniform(3.5, 7)
    else:
        # Each station finishes its own units (st-1 on lane 0, st-2 on lane 1), one per cycle.
        schedules = {}
        for lane, (station, arrival, away) in enumerate(
            (("st-1", rng.uniform(3, 8), duration_s * 0.3), ("st-2", rng.uniform(10, 20), duration_s * 0.65))
        ):
            schedules[station], finished = _shift_schedule(rng, duration_s, arrival, cycle_s, away)
            products += [(at, lane) for at in finished]

    video = out_dir / f"{name}.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    n_frames = round(duration_s * FPS)
    # Sensor noise: a bank of grain frames drawn once keeps rendering fast.
    grains = [noise.normal(0, 2, (HEIGHT, WIDTH, 3)).round().astype(np.int16) for _ in range(16)]
    truth_frames: dict[str, list[str]] = {s: [] for s in ZONES}
    crossed = 0
    for i in range(n_frames):
        t = i / FPS
        frame = background.copy()
        for lane_start, lane in products:
            x = -PRODUCT + (t - lane_start) * SPEED
            if t >= lane_start and -PRODUCT <= x <= WIDTH + PRODUCT:
                y = LANES_Y[lane]
                cv2.rectangle(
                    frame,
                    (round(x - PRODUCT / 2), y - PRODUCT // 2),
                    (round(x + PRODUCT / 2), y + PRODUCT // 2),
                    (40, 200, 240),
                    -1,
                )
        for station, phases in schedules.items():
            phase = next(p for p in phases if p.start_s <= t < p.end_s)
            cx, cy, arm = _person_center(phase, t, homes[station])
            inside = _in_zone(ZONES[station], cx, cy)
            truth_frames[station].append(
                "absent" if not inside else ("idle" if phase.kind == "idle" else "working")
            )
            if cx < -100:
                continue
            x1, y1 = round(cx - BODY_W / 2), round(cy - BODY_H / 2)
            cv2.rectangle(frame, (x1, y1), (x1 + BODY_W, y1 + BODY_H), (90, 140, 200), -1)
            cv2.circle(frame, (round(cx), y1 - 2), 9, (150, 180, 220), -1)
            ay = round(cy + arm)
            cv2.rectangle(frame, (x1 + BODY_W, ay - 3), (x1 + BODY_W + 14, ay + 3), (90, 140, 200), -1)
        frame = (
            (frame.astype(np.int16) + grains[int(noise.integers(len(grains)))]).clip(0, 255).astype(np.uint8)
        )
        writer.write(frame)
    writer.release()
    line_x = LINE[0][0]
    per_lane = [0, 0]
    for lane_start, lane in products:
        cross_t = lane_start + (line_x + PRODUCT) / SPEED
        if cross_t < n_frames / FPS:
            crossed += 1
            per_lane[lane] += 1

    stations: dict[str, Any] = {}
    for station, states in truth_frames.items():
        segments: list[dict[str, Any]] = []
        for i, state in enumerate(states):
            if segments and segments[-1]["state"] == state:
                segments[-1]["end_s"] = round((i + 1) / FPS, 3)
            else:
                segments.append(
                    {"state": state, "start_s": round(i / FPS, 3), "end_s": round((i + 1) / FPS, 3)}
                )
        totals = {s: round(states.count(s) / FPS, 3) for s in ("working", "idle", "absent")}
        stations[station] = {"zone": ZONES[station], "segments": segments, "totals_s": totals}
    # The takt-truth/1 format `takt edge eval` reads (docs/edge-agent.md), plus what the
    # scene was made of (seed, zones, count lines) for demo_config and the tests.
    truth = {
        "format": "takt-truth/1",
        "seed": seed,
        "fps": FPS,
        "width": WIDTH,
        "height": HEIGHT,
        "duration_s": n_frames / FPS,
        "start_time": start.isoformat(),
        "stations": stations,
        "count_line": {"id": "line-1", "station_id": "st-2", "points": LINE, "labels": ["product"]},
        "product_count": crossed,
        "product_counts": {"st-2": crossed},
    }
    if cycle_s is not None:
        middle = (LANES_Y[0] + LANES_Y[1]) // 2
        truth["count_lines"] = [
            {
                "id": "line-1",
                "station_id": "st-1",
                "points": [LINE[0], (line_x, middle)],
                "labels": ["product"],
            },
            {
                "id": "line-2",
                "station_id": "st-2",
                "points": [(line_x, middle), LINE[1]],
                "labels": ["product"],
            },
        ]
        truth["product_counts"] = {"st-1": per_lane[0], "st-2": per_lane[1]}
        del truth["count_line"]
    truth_path = out_dir / f"{name}.ground_truth.json"
    truth_path.write_text(json.dumps(truth, indent=2))
    return video, truth_path


def demo_config(video: Path, truth_path: Path, *, buffer_path: Path, mqtt_url: str) -> dict[str, Any]:
    """An agent configuration (as YAML-ready data) matching the rendered scene."""
    truth = json.loads(truth_path.read_text())
    return {
        "site_id": "demo-site",
        "gateway_id": "gw-demo",
        "camera": {
            "id": "cam-demo",
            "source": str(video),
            "sample_fps": 5,
            "start_time": truth["start_time"],
        },
        "detector": {
            "backend": "motion",
            "product_labels": ["product"],
            "motion": {"person_min_area": 800, "object_min_area": 60},
        },
        "stations": [
            {
                "id": sid,
                "zone": s["zone"],
                "absent_after_s": 3,
                "idle_after_s": 2,
                "working_after_s": 0.5,
                "activity_threshold": 0.02,
                "activity_window_s": 0.3,
            }
            for sid, s in truth["stations"].items()
        ],
        "count_lines": truth.get("count_lines") or [truth["count_line"]],
        "roster": [
            # Day and night shifts: the footage may be stamped at any time of day.
            {"station_id": "st-1", "worker_id": "w-ana", "start": "06:00:00", "end": "18:00:00"},
            {"station_id": "st-1", "worker_id": "w-cai", "start": "18:00:00", "end": "06:00:00"},
            {"station_id": "st-2", "worker_id": "w-ben", "start": "06:00:00", "end": "18:00:00"},
            {"station_id": "st-2", "worker_id": "w-dan", "start": "18:00:00", "end": "06:00:00"},
        ],
        "mqtt": {"url": mqtt_url},
        "buffer": {"path": str(buffer_path)},
    }
