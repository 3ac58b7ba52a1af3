"""Two model versions on the same generated footage: production and a shadow candidate.

Both are motion-backend "models" registered in a throwaway registry, differing
only in their parameters, which is enough to make their events differ. Frames,
zones and station logic are the same, so every difference is the model's.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.sources import Frame, VideoSource
from edge_agent.synthetic import demo_config, render
from models.registry import register
from takt.contract import Event

PRODUCTION = "person-motion@2026.11.1"
CANDIDATE = "person-motion@2026.11.2"
PRODUCTION_PARAMS: dict[str, Any] = {"person_min_area": 800, "object_min_area": 60}
# The candidate ignores small blobs: same states, other confidences, and it misses the parts.
CANDIDATE_PARAMS: dict[str, Any] = {"person_min_area": 800, "object_min_area": 300, "var_threshold": 60}


def make_registry(models_dir: Path) -> None:
    for ref, params in ((PRODUCTION, PRODUCTION_PARAMS), (CANDIDATE, CANDIDATE_PARAMS)):
        name, _, version = ref.partition("@")
        source = models_dir.parent / f"{name}-{version}-params.yaml"
        source.write_text(yaml.safe_dump(params))
        register(
            models_dir, source, name=name, version=version, format="motion", classes=["person", "product"]
        )


def edge_config(
    workdir: Path,
    *,
    seconds: float = 60,
    seed: int = 7,
    shadow: bool = True,
    gateway_id: str = "gw-demo",
    start_time: datetime | None = None,
) -> dict[str, Any]:
    """The clip starts at ``start_time``, by default a few minutes before now (``render``'s default)."""
    video, truth = render(workdir / "clip", seed=seed, duration_s=seconds, start_time=start_time)
    make_registry(workdir / "models")
    config = demo_config(video, truth, buffer_path=workdir / "buffer.sqlite", mqtt_url="mqtt://x@h")
    config["gateway_id"] = gateway_id
    config["detector"] = {
        "backend": "motion",
        "model": PRODUCTION,
        "models_dir": str(workdir / "models"),
        **(
            {"shadow": {"backend": "motion", "model": CANDIDATE, "models_dir": str(workdir / "models")}}
            if shadow
            else {}
        ),
    }
    return config


def run_offline(agent: Agent) -> list[Event]:
    events: list[Event] = []
    for item in VideoSource(agent.config.camera).frames(threading.Event()):
        assert isinstance(item, Frame)
        events += agent.process_frame(item)
    return events + agent.finish()


def two_version_events(workdir: Path, **kwargs: Any) -> list[Event]:
    """Production and shadow events from one agent run, with the seqs the buffer gave them."""
    agent = Agent(parse_config(edge_config(workdir, **kwargs)))
    run_offline(agent)
    return [Event.model_validate_json(payload) for _, payload in agent.buffer.read_after(0, 1_000_000)]
