"""Offline runs: the whole agent without a broker, every event written as one JSON line."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from edge_agent.agent import Agent
from edge_agent.buffer import EventBuffer
from edge_agent.config import ConfigError, EdgeConfig
from edge_agent.evaluation import ModelScore, Truth, score
from edge_agent.sources import is_file_source
from takt.contract import Event, encode_event

# Where an evaluation stamps the clip when neither the truth nor the config says (any time works:
# scores are computed in seconds from it).
EVAL_ORIGIN = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)


class JsonlEventBuffer(EventBuffer):
    """The agent's own buffer (so seqs are assigned as always) that also writes each event,
    in the contract's Event form with its seq, to a JSONL file as soon as it is committed."""

    def __init__(self, path: Path, out: IO[bytes]) -> None:
        super().__init__(path, synchronous="NORMAL")
        self._out = out

    def append(self, events: Sequence[Event], now: float | None = None) -> list[int]:
        seqs = super().append(events, now)
        for seq, event in zip(seqs, events, strict=True):
            self._out.write(encode_event(event.model_copy(update={"seq": seq})) + b"\n")
        self._out.flush()
        # Nothing will ever publish these: keep the on-disk copy from growing.
        if seqs:
            self.delete_ranges([(seqs[0], seqs[-1])])
        return seqs


def run_offline(config: EdgeConfig, out: IO[bytes], stop: threading.Event, max_frames: int | None) -> Agent:
    """Run the camera source through the whole agent (shadow candidate included), events to ``out``.

    Raises EdgeError (bad model, camera) like the live agent does.
    """
    with tempfile.TemporaryDirectory() as tmp:
        buffer = JsonlEventBuffer(Path(tmp) / "offline.sqlite", out)
        try:
            agent = Agent(config, buffer=buffer)
            agent.run(stop, publish=False, max_frames=max_frames)
        finally:
            buffer.close()
    return agent


def eval_config(config: EdgeConfig, truth: Truth) -> tuple[EdgeConfig, float]:
    """The config as an evaluation runs it (the file once, as fast as it decodes) and its origin."""
    source = config.single_camera.source  # one recorded clip: a `cameras:` config is refused
    if not is_file_source(source):
        raise ConfigError(f"camera.source {source!r} is a live camera: evaluate a recorded file of it")
    if truth.start_time_s is not None:
        origin = datetime.fromtimestamp(truth.start_time_s, UTC)
    else:
        origin = config.single_camera.start_time or EVAL_ORIGIN
    camera = config.single_camera.model_copy(update={"loop": False, "realtime": False, "start_time": origin})
    return config.model_copy(update={"camera": camera}), origin.timestamp()


def read_events(path: Path) -> list[Event]:
    return [Event.model_validate_json(line) for line in path.read_bytes().splitlines() if line.strip()]


def evaluate(
    config: EdgeConfig, truth: Truth, events_out: Path, *, max_frames: int | None = None
) -> tuple[list[ModelScore], Agent]:
    """Run the clip offline (events kept in ``events_out``) and score every model against ``truth``."""
    run_as, origin_s = eval_config(config, truth)
    with events_out.open("wb") as out:
        agent = run_offline(run_as, out, threading.Event(), max_frames)
    return score(truth, read_events(events_out), origin_s), agent
