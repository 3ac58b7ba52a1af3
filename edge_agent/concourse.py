"""The real concourse clip (``../shared/footage/concourse-720p.avi``) as a scene with stations.

A public overhead clip of a station concourse, 1280×720, 341 frames (the agent's timeline:
6.8 s at the 50 fps its header claims). It is not a factory, but it has what the detector
must get right: a standing group, a person standing alone, empty floor, a busy walkway.
The four zones below were drawn by looking at its frames (docs/edge-agent.md, "The concourse
clip"); ``tests/edge_agent/concourse.truth.json`` is their ground truth, written by hand.
Used by the real-clip tests and by the demo's gateway that watches real people.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Pixels of the 1280×720 frame; every zone is scored by the centre of a person's box.
ZONES: dict[str, list[tuple[int, int]]] = {
    # Four people standing and talking, left of centre, the whole clip.
    "group": [(230, 320), (340, 320), (340, 430), (230, 430)],
    # A man standing alone near the top edge, people walking past just above him.
    "lone": [(905, 45), (970, 45), (970, 125), (905, 125)],
    # Floor nobody steps on during the clip (walkers pass 40 px to its right).
    "empty": [(200, 140), (360, 140), (360, 260), (200, 260)],
    # A stretch of the concourse somebody walks through in every frame.
    "walkway": [(520, 200), (680, 200), (680, 500), (520, 500)],
}
# The clip is 6.8 s long: dwell times of a second, so a state can settle within it. Motion
# energy of a person standing still in this 720p view is ~0.03 (sway, compression noise),
# of a walker ~0.4: the synthetic footage's 0.02 would call everyone working.
STATION_SETTINGS: dict[str, float] = {
    "absent_after_s": 1.0,
    "idle_after_s": 1.0,
    "working_after_s": 0.5,
    "activity_window_s": 1.0,
    "activity_threshold": 0.1,
}
# Where the lone man stands, people are ~90 px tall and overlap the walkers behind him:
# YOLOX-Nano at 416 finds him in about a quarter of the frames; 2×2 tiles find him in all.
TILING: dict[str, Any] = {"grid": 2, "overlap": 0.2, "full_frame": True}


def stations(prefix: str = "") -> list[dict[str, Any]]:
    return [
        {"id": prefix + sid, "zone": [list(p) for p in zone], **STATION_SETTINGS}
        for sid, zone in ZONES.items()
    ]


def concourse_config(
    video: Path,
    *,
    models_dir: Path,
    model: str,
    mqtt_url: str,
    buffer_path: Path,
    sample_fps: float = 10.0,
    tiling: bool = True,
    prefix: str = "",
) -> dict[str, Any]:
    """An agent configuration (YAML-ready data) for the clip with the real detector."""
    detector: dict[str, Any] = {
        "backend": "yolo",
        "model": model,
        "models_dir": str(models_dir),
        "product_labels": [],
    }
    if tiling:
        detector["tiling"] = dict(TILING)
    return {
        "site_id": "concourse",
        "gateway_id": "gw-concourse",
        "camera": {"id": "cam-concourse", "source": str(video), "sample_fps": sample_fps},
        "detector": detector,
        "stations": stations(prefix),
        "mqtt": {"url": mqtt_url},
        "buffer": {"path": str(buffer_path)},
    }
