from __future__ import annotations

import json
import math
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import orjson
import pytest

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.sources import Frame, Outage, VideoSource
from edge_agent.synthetic import demo_config
from takt.contract import Event, EventType
from tests.edge_agent.acker import StandInAcker


def run_offline(agent: Agent) -> list[Event]:
    events: list[Event] = []
    for item in VideoSource(agent.config.camera).frames(threading.Event()):
        assert isinstance(item, Frame)
        events += agent.process_frame(item)
    return events + agent.finish()


def totals(events: list[Event]) -> dict[tuple[str, str], float]:
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for e in events:
        if e.event_type is not EventType.PRODUCT_COUNT and e.duration_s:
            sums[(e.station_id, e.event_type.value)] += e.duration_s
    return sums


def assert_segments_sane(events: list[Event]) -> None:
    for e in events:
        if e.duration_s:
            start = e.timestamp.timestamp()
            assert math.floor(start / 60) == math.floor((start + e.duration_s - 1e-6) / 60), e


def test_motion_backend_reproduces_the_realistic_demo_scene(tmp_path: Path) -> None:
    """The demo's scene (render(cycle_s=...)): a unit per cycle per station, each on its own count line."""
    from edge_agent.synthetic import render

    video, truth_path = render(tmp_path / "clip", seed=3, duration_s=150, cycle_s=(30, 50))
    truth = json.loads(truth_path.read_text())
    config = parse_config(
        demo_config(video, truth_path, buffer_path=tmp_path / "b.sqlite", mqtt_url="mqtt://x@h")
    )
    events = run_offline(Agent(config))
    got = totals(events)
    for station, data in truth["stations"].items():
        for state, seconds in data["totals_s"].items():
            assert got[(station, state)] == pytest.approx(seconds, rel=0.05, abs=1.0), (station, state)
        units = sum(
            e.count for e in events if e.event_type is EventType.PRODUCT_COUNT and e.station_id == station
        )
        assert units == truth["product_counts"][station] > 0, station
        # Plausible rates: tens of units per working hour, not thousands.
        assert 30 <= units / data["totals_s"]["working"] * 3600 <= 130


@pytest.mark.parametrize("seed", [7, pytest.param(3, marks=pytest.mark.slow)])
def test_motion_backend_reproduces_ground_truth(
    demo_footage: tuple[Path, Path], tmp_path: Path, seed: int
) -> None:
    from edge_agent.synthetic import render

    video, truth_path = demo_footage if seed == 7 else render(tmp_path / "clip", seed=seed, duration_s=90)
    truth = json.loads(truth_path.read_text())
    config = parse_config(
        demo_config(video, truth_path, buffer_path=tmp_path / "b.sqlite", mqtt_url="mqtt://x@h")
    )
    agent = Agent(config)
    events = run_offline(agent)
    got = totals(events)
    for station, data in truth["stations"].items():
        for state, seconds in data["totals_s"].items():
            assert got[(station, state)] == pytest.approx(seconds, rel=0.05), (station, state)
    counted = sum(e.count for e in events if e.event_type is EventType.PRODUCT_COUNT)
    assert counted == truth["product_count"]
    assert_segments_sane(events)
    # Event times come from the video timeline, not from the wall clock.
    start = datetime.fromisoformat(truth["start_time"])
    assert min(e.timestamp for e in events) == start
    assert max(e.timestamp for e in events).timestamp() <= start.timestamp() + truth["duration_s"]
    # Everything the agent made was committed to the buffer, in order, with its seq.
    rows = agent.buffer.read_after(0, 100_000)
    assert len(rows) == len(events)
    first = orjson.loads(rows[0][1])
    assert first["seq"] == 1
    assert first["config_version"] == config.config_version()
    assert first["model_version"] == "motion-mog2@1"
    assert first["worker_id"] in {"w-ana", "w-ben", "w-cai", "w-dan"}  # the roster covers every hour
    assert {e.camera_id for e in events} == {"cam-demo"}


def _replay_config(tmp_path: Path, lines: list[dict[str, Any]]) -> Any:
    replay = tmp_path / "dets.jsonl"
    replay.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    video = tmp_path / "blank.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 5.0, (160, 120))
    for _ in range(len(lines)):
        writer.write(np.zeros((120, 160, 3), np.uint8))
    writer.release()
    return parse_config(
        {
            "site_id": "s",
            "gateway_id": "g",
            "camera": {
                "id": "c",
                "source": str(video),
                "sample_fps": 5,
                "start_time": "2026-11-23T08:00:50Z",
            },
            "detector": {"backend": "replay", "replay_file": str(replay)},
            "stations": [{"id": "st", "zone": [[0, 0], [80, 0], [80, 120], [0, 120]], "absent_after_s": 2}],
            "count_lines": [{"id": "l", "station_id": "st", "points": [[120, 0], [120, 120]]}],
            "mqtt": {"url": "mqtt://x@h"},
            "buffer": {"path": str(tmp_path / "b.sqlite")},
        }
    )


def test_replay_backend_drives_states_and_counts(tmp_path: Path) -> None:
    lines = []
    for i in range(100):  # 20 s at 5 fps
        dets = []
        if i < 60:  # a person in the zone for 12 s, then gone
            dets.append({"label": "person", "confidence": 0.8, "box": [20, 20, 50, 90], "track_id": 1})
        x = 100 + i * 2  # a product drifting right across x = 120; a second one with no track id
        dets.append({"label": "product", "confidence": 0.7, "box": [x - 4, 50, x + 4, 58], "track_id": 9})
        dets.append({"label": "product", "confidence": 0.7, "box": [x - 4, 80, x + 4, 88]})
        lines.append({"t": i / 5, "detections": dets})
    agent = Agent(_replay_config(tmp_path, lines))
    events = run_offline(agent)
    got = totals(events)
    assert got[("st", "idle")] == pytest.approx(12, abs=0.3)  # present, no motion energy on a black frame
    assert got[("st", "absent")] == pytest.approx(7.8, abs=0.3)
    assert [e.count for e in events if e.event_type is EventType.PRODUCT_COUNT] == [1]
    assert_segments_sane(events)  # the clip crosses 08:01:00


def test_camera_outage_adds_no_state_time(tmp_path: Path) -> None:
    config = _replay_config(tmp_path, [{"t": 0, "detections": []}])
    agent = Agent(config, detector=_NoDetections())
    frame = np.zeros((120, 160, 3), np.uint8)
    t0 = 1_800_000_000.0
    events: list[Event] = []
    for i in range(10):
        events += agent.process_frame(Frame(frame, t0 + i, i))
    events += agent.camera_lost(Outage(t0 + 9, "stream dropped"))
    assert agent.camera_state == "reconnecting"
    for i in range(100, 110):  # camera back 91 s later
        events += agent.process_frame(Frame(frame, t0 + i, i))
    # A gap longer than max_gap_s without an explicit outage is treated the same way.
    for i in range(300, 305):
        events += agent.process_frame(Frame(frame, t0 + i, i))
    events += agent.finish()
    assert sum(totals(events).values()) == pytest.approx(9 + 9 + 4)


@pytest.mark.parametrize("start", [59.918186123, 59.9999996, 0.0000004, 12.3456789])
def test_segment_events_never_reach_past_a_minute_after_rounding(tmp_path: Path, start: float) -> None:
    from edge_agent.activity import Segment

    agent = Agent(_replay_config(tmp_path, [{"t": 0, "detections": []}]), detector=_NoDetections())
    base = 1_795_432_560.0  # a minute boundary
    end = base + 60 if start > 1 else base + 1
    events = agent.commit([Segment("st", EventType.IDLE, "w", base + start, end, 1.0)])
    assert_segments_sane(events)
    for e in events:
        assert e.duration_s is not None
        assert (e.timestamp.timestamp() + e.duration_s) <= end + 1e-9


class _NoDetections:
    model_version = "none@0"
    tracks = True

    def detect(self, frame: Any, timestamp_s: float) -> list[Any]:
        return []

    def close(self) -> None:
        return None


def test_badge_in_zone_names_the_worker(tmp_path: Path) -> None:
    config = _replay_config(tmp_path, [{"t": 0, "detections": []}])
    config = config.model_copy(
        update={
            "badges": config.badges.model_copy(
                update={"enabled": True, "markers": {7: "w-carol"}, "every_n_frames": 1}
            )
        }
    )
    agent = Agent(config, detector=_NoDetections())
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    marker = cv2.aruco.generateImageMarker(dictionary, 7, 40)
    frame = np.full((120, 160, 3), 255, np.uint8)
    frame[30:70, 20:60] = marker[:, :, None]  # inside the station zone (x < 80)
    events = agent.process_frame(Frame(frame, 1_800_000_000.0, 0))
    assert events[0].worker_id == "w-carol"


def test_real_footage_runs_to_the_end_and_publishes(
    shared_footage: Path,
    tmp_path: Path,
    site_id: str,
    gateway_url: Callable[[str, str], str],
    acker_factory: Callable[..., StandInAcker],
) -> None:
    acker = acker_factory(site_id)
    config = parse_config(
        {
            "site_id": site_id,
            "gateway_id": "gw-concourse",
            "camera": {
                "id": "cam-concourse",
                "source": str(shared_footage),
                "sample_fps": 10,
                "process_width": 320,
            },
            "detector": {"backend": "motion", "motion": {"person_min_area": 150, "object_min_area": 40}},
            "stations": [
                {
                    "id": "left",
                    "zone": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]],
                    "normalized": True,
                    "absent_after_s": 2,
                },
                {
                    "id": "right",
                    "zone": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]],
                    "normalized": True,
                    "absent_after_s": 2,
                },
            ],
            "mqtt": {"url": gateway_url(site_id, "gw-concourse"), "ack_timeout_s": 5},
            "buffer": {"path": str(tmp_path / "b.sqlite")},
        }
    )
    agent = Agent(config)
    agent.run(threading.Event(), exit_at_end=True, drain_timeout_s=30)
    # The file says 50 fps and has 341 decodable frames: ~6.8 s of timeline, sampled every 5th.
    assert agent.frames >= 65
    assert agent.buffer.stats().backlog == 0  # and everything was acknowledged
    events = acker.events()
    assert len(events) == agent.events_made
    per_station = totals(events)
    observed = [sum(v for (s, _), v in per_station.items() if s == station) for station in ("left", "right")]
    # Each station accounts for the whole observed timeline, no more, no less.
    assert observed[0] == pytest.approx(observed[1], abs=0.01)
    assert observed[0] == pytest.approx((agent.frames - 1) / 10, abs=0.2)
    # People walk through the concourse: somebody is seen in at least one half.
    assert any(state in {"working", "idle"} for (_, state) in per_station)
    assert_segments_sane(events)
    assert sorted(e.seq for e in events if e.seq is not None) == list(range(1, len(events) + 1))
